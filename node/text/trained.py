"""A small real tokenizer built here: no network, no hub (tests, the simulator, the demo).

`build_tokenizer_dir` trains a byte-level BPE with the `tokenizers` trainer on
a built-in corpus with ASCII, accents, CJK and emoji, so any unicode text
encodes and decodes, and multi-byte characters are often split across tokens.
Beside `tokenizer.json` it writes a `tokenizer_config.json` with a chat template
in the style of a real model family (written for meshgate, modelled on the
Llama 3 and Qwen 2.5 formats). Training is deterministic and takes a few tens
of milliseconds; `default_tokenizer_dir` keeps one built copy in the temporary
directory for `meshgate grpc-echo-worker` without `--tokenizer`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you today? I am fine, thank you.",
    "def add(a, b):\n    return a + b\n",
    '{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}',
    '<tool_call>\n{"name": "lookup", "arguments": {}}\n</tool_call>',
    "<think>Let me reason about this step by step.</think>The answer is 42.",
    "Café déjà vu, naïve façade, jalapeño, Zürich, Ærøskøbing.",
    "東京は日本の首都です。北京是中国的首都。서울은 한국의 수도입니다.",
    "Emoji: 🙂 🚀 👍🏽 🇫🇷 👨‍👩‍👧 ❤️ 🎉",
    "Numbers 0123456789 and symbols ~!@#$%^&*()_+-=[]{}|;':\",./<>?",
]

LLAMA3_STYLE = (
    "{{- bos_token }}"
    "{%- if tools %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nYou may call these tools:\\n' }}"
    "{%- for tool in tools %}{{- tool | tojson }}{{- '\\n' }}{%- endfor %}"
    "{{- '<|eot_id|>' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message['role'] not in ['system', 'user', 'assistant', 'tool'] %}"
    "{{- raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{{- message['content'] | trim }}{{- '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}"
)

QWEN25_STYLE = (
    "{%- if tools %}"
    "{{- '<|im_start|>system\\n# Tools\\n<tools>' }}"
    "{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}"
    "{%- elif messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

STYLES = {
    "llama3": {
        "template": LLAMA3_STYLE,
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "special": ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"],
    },
    "qwen25": {
        "template": QWEN25_STYLE,
        "bos": None,
        "eos": "<|im_end|>",
        "special": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
    },
}


def train_tokenizer(
    style: str = "llama3", vocab_size: int = 600, corpus: Sequence[str] = CORPUS * 4
) -> Tokenizer:
    """A byte-level BPE trained on `corpus`, with the style's special tokens."""
    spec = STYLES[style]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=spec["special"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    if spec["bos"]:  # a real Llama 3 tokenizer adds BOS itself
        bos = spec["bos"]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A",
            pair=f"{bos} $A $B",
            special_tokens=[(bos, tokenizer.token_to_id(bos))],
        )
    return tokenizer


def build_tokenizer_dir(
    directory: Path, style: str = "llama3", model_max_length: int = 4096
) -> Path:
    """Write tokenizer.json and tokenizer_config.json into `directory`; return it."""
    spec = STYLES[style]
    directory.mkdir(parents=True, exist_ok=True)
    train_tokenizer(style).save(str(directory / "tokenizer.json"))
    config = {
        "bos_token": spec["bos"],
        "eos_token": spec["eos"],
        "model_max_length": model_max_length,
        "chat_template": spec["template"],
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return directory


def default_tokenizer_dir(style: str = "llama3") -> Path:
    """The built-in tokenizer's directory, built once per user and content in the temporary
    directory (a new private one when the shared name is not this user's)."""
    spec = json.dumps([style, STYLES[style], CORPUS], sort_keys=True).encode()
    digest = hashlib.sha256(spec).hexdigest()[:16]
    uid = os.getuid() if hasattr(os, "getuid") else 0
    parent = Path(tempfile.gettempdir())
    cached = parent / f"meshgate-tokenizer-{uid}-{digest}"
    if cached.is_dir() and cached.stat().st_uid == uid:
        if (cached / "tokenizer_config.json").is_file():
            return cached
    elif cached.exists():
        return build_tokenizer_dir(Path(tempfile.mkdtemp(prefix="meshgate-tokenizer-")), style)
    # Built aside, then renamed: a concurrent start sees a whole directory or none.
    building = build_tokenizer_dir(Path(tempfile.mkdtemp(prefix=".build-", dir=parent)), style)
    try:
        building.rename(cached)
    except OSError:  # another start won the race (or left a partial one: use ours)
        if not (cached / "tokenizer_config.json").is_file():
            return building
        shutil.rmtree(building, ignore_errors=True)
    return cached
