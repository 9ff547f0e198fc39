"""Unit tests of the worker label added to engine metrics (`node.api.openai.label_samples`)."""

from __future__ import annotations

from node.api.openai import label_samples

ENGINE = """\
# HELP vllm_requests_running Requests running.
# TYPE vllm_requests_running gauge
vllm_requests_running{model_name="m"} 2.0

# HELP vllm_tokens_total Tokens.
# TYPE vllm_tokens_total counter
vllm_tokens_total 17
vllm_latency_bucket{le="0.5",model_name="m"} 3 1700000000000
vllm_empty{} 1
"""


def test_adds_worker_label_to_samples_with_and_without_labels() -> None:
    out = label_samples(ENGINE, "w1", set())
    assert out == [
        "# HELP vllm_requests_running Requests running.",
        "# TYPE vllm_requests_running gauge",
        'vllm_requests_running{worker="w1",model_name="m"} 2.0',
        "# HELP vllm_tokens_total Tokens.",
        "# TYPE vllm_tokens_total counter",
        'vllm_tokens_total{worker="w1"} 17',
        'vllm_latency_bucket{worker="w1",le="0.5",model_name="m"} 3 1700000000000',
        'vllm_empty{worker="w1"} 1',
    ]


def test_help_and_type_lines_appear_once_across_workers() -> None:
    described: set[str] = set()
    lines = label_samples(ENGINE, "w1", described) + label_samples(ENGINE, "w2", described)
    comments = [line for line in lines if line.startswith("#")]
    assert len(comments) == 4
    assert len(set(comments)) == 4
    samples = [line for line in lines if not line.startswith("#")]
    assert len(samples) == 8
    assert sum('worker="w1"' in s for s in samples) == 4
    assert sum('worker="w2"' in s for s in samples) == 4
    assert 'vllm_tokens_total{worker="w2"} 17' in samples
    # The shared set remembers what was described.
    assert "# TYPE vllm_tokens_total counter" in described


def test_second_worker_output_has_no_comments() -> None:
    described: set[str] = set()
    label_samples(ENGINE, "w1", described)
    assert all(not line.startswith("#") for line in label_samples(ENGINE, "w2", described))


def test_blank_lines_are_skipped() -> None:
    out = label_samples("\n\n   \nfoo 1\n\t\n\n", "w", set())
    assert out == ['foo{worker="w"} 1']
    assert label_samples("", "w", set()) == []
    assert label_samples("\n \n", "w", set()) == []


def test_every_sample_line_gets_exactly_one_worker_label() -> None:
    for line in label_samples(ENGINE, "abc", set()):
        if not line.startswith("#"):
            assert line.count('worker="abc"') == 1
            name, _, rest = line.partition("{")
            assert name and " " not in name
            assert rest.startswith('worker="abc"')
