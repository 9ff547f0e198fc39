"""Loading a tokenizer and rendering chat templates (node/text)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from node.text.chat_template import ChatTemplate, ChatTemplateError
from node.text.tokenizer import TextTokenizer, TokenizerLoadError, load_tokenizer
from tests.tokenizer_files import build_tokenizer_dir

HELLO = [{"role": "user", "content": "Hello <b>café</b>"}]


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer_dir(tmp_path_factory.mktemp("llama3"), "llama3")


@pytest.fixture(scope="module")
def llama(llama_dir: Path) -> TextTokenizer:
    return load_tokenizer(llama_dir)


def test_config_gives_special_tokens_length_and_template(llama: TextTokenizer) -> None:
    assert llama.bos_token == "<|begin_of_text|>"
    assert llama.eos_token == "<|eot_id|>"
    assert llama.eos_token_ids == [llama.encode("<|eot_id|>", add_special_tokens=False)[0]]
    assert llama.max_model_len == 4096
    assert llama.vocab_size == 600
    ids = llama.encode("Hello")
    assert ids[0] == llama.encode("<|begin_of_text|>", add_special_tokens=False)[0]
    assert llama.encode("Hello", add_special_tokens=False) == ids[1:]
    assert llama.decode(ids) == "Hello"
    assert llama.decode(ids, skip_special_tokens=False) == "<|begin_of_text|>Hello"


def test_chat_template_renders_like_transformers(llama: TextTokenizer) -> None:
    tool = {"type": "function", "function": {"name": "get_weather", "description": "<é>"}}
    prompt = llama.apply_chat_template(HELLO, tools=[tool])
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>system")
    assert json.dumps(tool, ensure_ascii=False) in prompt  # tojson keeps <, > and é
    assert "Hello <b>café</b><|eot_id|>" in prompt
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    closed = llama.apply_chat_template(HELLO, add_generation_prompt=False)
    assert closed.endswith("<|eot_id|>")


def test_qwen_style_and_explicit_template_override(tmp_path: Path) -> None:
    qwen = load_tokenizer(build_tokenizer_dir(tmp_path / "q", "qwen25"))
    assert qwen.bos_token is None and qwen.eos_token == "<|im_end|>"
    prompt = qwen.apply_chat_template(HELLO)
    assert prompt.startswith("<|im_start|>system\nYou are a helpful assistant.")
    assert prompt.endswith("<|im_start|>assistant\n")
    own = load_tokenizer(tmp_path / "q" / "tokenizer.json", chat_template="{{ x }}-{{ eos_token }}")
    assert own.apply_chat_template(HELLO, x="extra") == "extra-<|im_end|>"


def test_named_template_list_takes_default_and_huge_length_is_no_limit(tmp_path: Path) -> None:
    directory = build_tokenizer_dir(tmp_path / "t")
    config = json.loads((directory / "tokenizer_config.json").read_text())
    config["chat_template"] = [
        {"name": "tool_use", "template": "tools"},
        {"name": "default", "template": "plain {{ messages | length }}"},
    ]
    config["model_max_length"] = int(1e30)
    config["bos_token"] = {"content": "<|begin_of_text|>", "special": True}
    (directory / "tokenizer_config.json").write_text(json.dumps(config))
    loaded = load_tokenizer(directory)
    assert loaded.apply_chat_template(HELLO) == "plain 1"
    assert loaded.max_model_len is None
    assert loaded.bos_token == "<|begin_of_text|>"


def test_check_ids_names_the_first_bad_id(llama: TextTokenizer) -> None:
    llama.check_ids([0, 1, 599])
    with pytest.raises(ValueError, match=r"token id 600 at index 1 is out of range"):
        llama.check_ids([5, 600, -1])
    with pytest.raises(ValueError, match=r"token id -1 at index 0"):
        llama.check_ids([-1])
    with pytest.raises(ValueError, match=r"index 2 is '7', not an integer"):
        llama.check_ids([1, 2, "7"])
    with pytest.raises(ValueError, match=r"index 0 is True"):
        llama.check_ids([True])
    with pytest.raises(ValueError, match=r"index 0 is \[0, 0, 0, .{20,30}\.\.\., not an"):
        llama.check_ids([[0] * 10_000])  # a long value is cut short in the message


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: None, "no tokenizer file at"),
        (lambda d: (d / "tokenizer.json").write_text("{not json"), "not a valid tokenizer.json"),
        (
            lambda d: (d / "tokenizer.json").write_text('{"version": "1.0"}'),
            "not a valid tokenizer.json",
        ),
    ],
    ids=["missing", "corrupt", "not-a-tokenizer"],
)
def test_bad_files_fail_the_load_clearly(tmp_path: Path, setup, message: str) -> None:
    setup(tmp_path)
    with pytest.raises(TokenizerLoadError, match=message):
        load_tokenizer(tmp_path)


def test_bad_config_fails_the_load(llama_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_bytes((llama_dir / "tokenizer.json").read_bytes())
    (tmp_path / "tokenizer_config.json").write_text("[1]")
    with pytest.raises(TokenizerLoadError, match="must hold a JSON object"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": "{% for %}"}')
    with pytest.raises(TokenizerLoadError, match=r"does not compile: .*line 1"):
        load_tokenizer(tmp_path)


def test_raise_exception_becomes_a_template_error(llama: TextTokenizer) -> None:
    with pytest.raises(ChatTemplateError, match="unknown role: robot"):
        llama.apply_chat_template([{"role": "robot", "content": "beep"}])


@pytest.mark.parametrize(
    "source",
    [
        "{{ messages.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ raise_exception.__globals__.keys() }}",
        "{{ messages.append(1) }}",
        "{{ cycler.__init__.__globals__.os }}",
    ],
)
def test_sandbox_refuses_attacks(source: str) -> None:
    with pytest.raises(ChatTemplateError, match="chat template failed"):
        ChatTemplate(source).render(HELLO)


def test_unsafe_attribute_alone_is_empty_never_the_object() -> None:
    # The sandbox hands back an undefined for an unsafe attribute: it prints as
    # nothing, and any use of it raises.
    assert ChatTemplate("{{ raise_exception.__globals__ }}").render(HELLO) == ""


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("{{ 'x' * 1000000000 }}", "too big"),
        ("{{ [1, 2] * 1000000000 }}", "too big"),
        ("{{ 1000000000 * 'x' }}", "too big"),
        ("{{ 2 ** 100000000 }}", "an integer that is too big"),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "loops more than 1000000 times",
        ),
    ],
)
def test_memory_and_loop_bombs_fail_fast(source: str, says: str) -> None:
    with pytest.raises(ChatTemplateError, match=says):
        ChatTemplate(source).render(HELLO)
    assert ChatTemplate("{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ range(3) | list }}").render(HELLO) == (
        "ababab1024[0, 1, 2]"
    )


def test_output_and_template_size_are_bounded() -> None:
    # Few loop steps (the loop budget would stop a many-step bomb first), much output.
    bomb = "{% for i in range(1000) %}{{ 'x' * 5000 }}{% endfor %}"
    with pytest.raises(ChatTemplateError, match="output passed"):
        ChatTemplate(bomb).render(HELLO)
    with pytest.raises(ChatTemplateError, match="the limit is"):
        ChatTemplate("x" * (256 * 1024 + 1))


def test_strftime_now_and_loop_controls() -> None:
    source = (
        "{% for m in messages %}{% if loop.index > 1 %}{% break %}{% endif %}"
        "{{ m.role }}{% endfor %}"
    )
    template = ChatTemplate(source + "{{ strftime_now('%Y') | length }}")
    assert template.render([*HELLO, {"role": "assistant", "content": "x"}]) == "user4"
