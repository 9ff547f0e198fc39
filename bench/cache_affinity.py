"""How often the cache_aware policy keeps a conversation on one worker, by the node's
process count (issue 15: each data-plane process has its own prefix tree).

For each `--processes` value: one node (a `LocalMesh` of one node and `--workers`
echo workers) with the model's policy set to cache_aware, then `--conversations`
conversations of `--turns` turns each, every turn's prompt the previous one plus a
new message, each request on a new connection (so the kernel spreads them over the
data-plane processes). It prints the share of turns after the first that went to the
worker of the conversation's previous turn (`X-Meshgate-Worker`).

    .venv/bin/python bench/cache_affinity.py --processes 1 3
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.localmesh.mesh import LocalMesh

MODEL = "bench-model"


def affinity(processes: int, workers: int, conversations: int, turns: int) -> tuple[float, int]:
    """(share of turns on the previous turn's worker, turns counted) at `processes`."""
    args = ["--processes", str(processes), "--log-level", "warning"]
    with LocalMesh(nodes=1, workers=workers, model=MODEL, node_args=args) as mesh:
        url = mesh.nodes[0].url
        put = requests.put(f"{url}/policies/{MODEL}", json={"policy": "cache_aware"}, timeout=10)
        put.raise_for_status()
        kept = counted = 0
        for c in range(conversations):
            messages: list[dict[str, str]] = []
            previous = None
            for t in range(turns):
                text = f"conversation {c} turn {t}: " + "tell me more about it. " * 8
                messages.append({"role": "user", "content": text})
                body = {"model": MODEL, "messages": messages, "max_tokens": 2}
                with requests.Session() as session:  # a new connection
                    answer = session.post(f"{url}/v1/chat/completions", json=body, timeout=10)
                answer.raise_for_status()
                worker = answer.headers["X-Meshgate-Worker"]
                if previous is not None:
                    counted += 1
                    kept += worker == previous
                previous = worker
        return kept / max(counted, 1), counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--conversations", type=int, default=20)
    parser.add_argument("--turns", type=int, default=6)
    args = parser.parse_args()
    for processes in args.processes:
        share, counted = affinity(processes, args.workers, args.conversations, args.turns)
        print(
            f"--processes {processes}: {share:.0%} of {counted} turns went to the worker of "
            "the conversation's previous turn",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
