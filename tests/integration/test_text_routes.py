"""/v1/tokenize and /v1/detokenize on a real node, the tokenizer named by a worker's
tokenizer_path (a fixture directory the test trains)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from node.text.tokenizer import TextTokenizer, load_tokenizer
from tests.integration.conftest import Cluster
from tests.support import wait_for
from tests.tokenizer_files import build_tokenizer_dir

MODEL = "echo-model"
OTHER = "other-model"
HELLO = [{"role": "user", "content": "Hello, world! 🙂"}]


@dataclass
class Setup:
    url: str
    tokenizer: TextTokenizer
    worker: str  # the echo-model worker's id
    other: str  # a worker of OTHER, with no tokenizer_path
    tmp: Path


def _post(setup: Setup, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(setup.url + path, json=body, timeout=10)


def _register(url: str, worker_url: str, **fields: Any) -> str:
    resp = requests.post(url + "/workers", json={"url": worker_url, **fields}, timeout=5)
    assert resp.status_code == 202, resp.text
    worker_id = resp.json()["worker_id"]
    wait_for(
        lambda: requests.get(f"{url}/workers/{worker_id}", timeout=5).json()["status"] == "ready",
        what="worker ready",
    )
    return worker_id


def _patch(setup: Setup, worker_id: str, **fields: Any) -> None:
    resp = requests.patch(f"{setup.url}/workers/{worker_id}", json=fields, timeout=5)
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def setup(module_cluster: Cluster) -> Setup:
    directory = build_tokenizer_dir(module_cluster.tmp_path / "llama3", "llama3")
    _, echo_url = module_cluster.echo(model=MODEL)
    _, other_url = module_cluster.echo(model=OTHER)
    node = module_cluster.node(ready=False)
    worker = _register(node.url, echo_url, tokenizer_path=str(directory))
    other = _register(node.url, other_url)
    return Setup(node.url, load_tokenizer(directory), worker, other, module_cluster.tmp_path)


def test_tokenize_a_prompt_and_a_list(setup: Setup) -> None:
    resp = _post(setup, "/v1/tokenize", {"model": MODEL, "prompt": "Hello, 東京 🙂"})
    assert resp.status_code == 200, resp.text
    expected = setup.tokenizer.encode("Hello, 東京 🙂")
    assert resp.json() == {"tokens": expected, "count": len(expected), "max_model_len": 4096}
    bare = _post(
        setup, "/v1/tokenize", {"model": MODEL, "prompt": "Hello", "add_special_tokens": False}
    )
    assert bare.json()["tokens"] == setup.tokenizer.encode("Hello", add_special_tokens=False)
    many = _post(setup, "/v1/tokenize", {"model": MODEL, "prompt": ["a", "Hello there"]}).json()
    assert many["tokens"] == [setup.tokenizer.encode("a"), setup.tokenizer.encode("Hello there")]
    assert many["count"] == [len(t) for t in many["tokens"]]


def test_messages_go_through_the_chat_template(setup: Setup) -> None:
    tools = [{"type": "function", "function": {"name": "get_weather"}}]
    resp = _post(setup, "/v1/tokenize", {"model": MODEL, "messages": HELLO, "tools": tools})
    assert resp.status_code == 200, resp.text
    prompt = setup.tokenizer.apply_chat_template(HELLO, tools=tools)
    assert resp.json()["tokens"] == setup.tokenizer.encode(prompt, add_special_tokens=False)
    text = _post(setup, "/v1/detokenize", {"model": MODEL, "tokens": resp.json()["tokens"]})
    raw = {"model": MODEL, "tokens": resp.json()["tokens"], "skip_special_tokens": False}
    assert _post(setup, "/v1/detokenize", raw).json()["text"] == prompt
    assert '"get_weather"' in text.json()["text"] and "<|eot_id|>" not in text.json()["text"]
    more = {"documents": [{"title": "t", "text": "x"}], "chat_template_kwargs": {"enable": 1}}
    resp = _post(setup, "/v1/tokenize", {"model": MODEL, "messages": HELLO, **more})
    assert resp.status_code == 200, resp.text
    assert resp.json()["tokens"] == setup.tokenizer.encode(
        setup.tokenizer.apply_chat_template(HELLO), add_special_tokens=False
    )


def test_detokenize_round_trips(setup: Setup) -> None:
    ids = setup.tokenizer.encode("Café 👨\u200d👩\u200d👧 北京")
    resp = _post(setup, "/v1/detokenize", {"model": MODEL, "tokens": ids})
    assert resp.status_code == 200 and resp.json() == {"text": "Café 👨\u200d👩\u200d👧 北京"}


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"model": "nope", "prompt": "x"}, 404, "MODEL_NOT_FOUND"),
        ({"tokenizer": "nope", "prompt": "x"}, 404, "TOKENIZER_NOT_FOUND"),
        ({"model": OTHER, "prompt": "x"}, 404, "TOKENIZER_NOT_FOUND"),
        ({"model": MODEL, "tokenizer": "t", "prompt": "x"}, 400, "exactly one of model and"),
        ({"prompt": "x"}, 400, "neither was given"),
        ({"model": MODEL}, 400, "exactly one of prompt and messages"),
        ({"model": MODEL, "prompt": "x", "messages": HELLO}, 400, "both were given"),
        ({"model": MODEL, "prompt": []}, 400, "prompt"),
        ({"model": MODEL, "prompt": "x", "tools": []}, 400, "tools go with messages"),
        ({"model": MODEL, "prompt": "x", "documents": []}, 400, "documents go with messages"),
        (
            {"model": MODEL, "messages": HELLO, "chat_template_kwargs": {"bos_token": "x"}},
            400,
            "may not set bos_token",
        ),
        ({"model": MODEL, "prompt": "x" * (512 * 1024 + 1)}, 400, "the limit is 524288"),
        ({"model": MODEL, "prompt": "word " * 5000}, 400, "the model's limit is 4096"),
        (
            {"model": MODEL, "messages": [{"role": "robot", "content": "beep"}]},
            400,
            "unknown role: robot",
        ),
    ],
    ids=[
        "unknown-model",
        "unknown-tokenizer",
        "model-without-tokenizer",
        "model-and-tokenizer",
        "neither",
        "no-prompt",
        "prompt-and-messages",
        "empty-list",
        "tools-without-messages",
        "documents-without-messages",
        "template-kwargs-replace-a-field",
        "prompt-too-big",
        "longer-than-context",
        "template-raises",
    ],
)
def test_tokenize_refuses(setup: Setup, body: dict[str, Any], status: int, says: str) -> None:
    resp = _post(setup, "/v1/tokenize", body)
    assert resp.status_code == status, resp.text
    assert says in resp.text


def test_over_long_prompt_names_its_count(setup: Setup) -> None:
    count = len(setup.tokenizer.encode("word " * 5000))
    resp = _post(setup, "/v1/tokenize", {"model": MODEL, "prompt": "word " * 5000})
    assert resp.json()["error"]["message"] == (
        f"the prompt is {count} tokens; the model's limit is 4096"
    )


@pytest.mark.parametrize(
    ("tokens", "says"),
    [
        ([1, 2, 600, -1], "token id 600 at index 2 is out of range"),
        ([-1], "token id -1 at index 0 is out of range"),
        ([1, 2.5], "token at index 1 is 2.5, not an integer"),
        ([1, "7"], "token at index 1 is '7', not an integer"),
        (list(range(128 * 1024 + 1)), "at most 131072 token ids"),
    ],
    ids=["too-big", "negative", "float", "string", "too-many"],
)
def test_detokenize_refuses_bad_ids(setup: Setup, tokens: list[Any], says: str) -> None:
    resp = _post(setup, "/v1/detokenize", {"model": MODEL, "tokens": tokens})
    assert resp.status_code == 400 and says in resp.text, resp.text


def test_a_worker_template_and_path_problems(setup: Setup) -> None:
    """Last: it changes the workers. Their chat_template wins; a bad path is a 422."""
    _patch(setup, setup.worker, chat_template="{{ bos_token }}X{{ messages | length }}")
    expected = setup.tokenizer.encode("<|begin_of_text|>X1", add_special_tokens=False)
    wait_for(
        lambda: (
            _post(setup, "/v1/tokenize", {"model": MODEL, "messages": HELLO}).json()["tokens"]
            == expected
        ),
        what="the worker's chat template",
    )
    corrupt = setup.tmp / "corrupt"
    corrupt.mkdir()
    (corrupt / "tokenizer.json").write_text("{not json")
    for path, says in ((corrupt, "not a valid tokenizer.json"), (setup.tmp / "gone", "no tok")):
        _patch(setup, setup.other, tokenizer_path=str(path))

        def refused(says: str = says) -> bool:
            resp = _post(setup, "/v1/detokenize", {"model": OTHER, "tokens": [1]})
            return resp.status_code == 422 and says in resp.text

        wait_for(refused, what=f"422 for {path}")
