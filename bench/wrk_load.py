"""smg_compare.py's load: one `wrk` run (C, so the load generator costs little CPU) with a
Lua script that POSTs the chat completion and prints the result as one JSON line.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from common import BenchError
from smg_procs import MODEL, tool

CHAT_PATH = "/v1/chat/completions"
BODY = (
    '{"model": "' + MODEL + '", "messages": [{"role": "user", "content": "hello world"}], '
    '"max_tokens": 16}'
)
# wrk counts non-2xx answers in errors.status; `done` runs once, after the run.
LUA = """\
wrk.method = "POST"
wrk.body = '%s'
wrk.headers["Content-Type"] = "application/json"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %%d, "duration_us": %%d, "errors": %%d, '
    .. '"p50_us": %%d, "p90_us": %%d, "p99_us": %%d}\\n',
    summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def write_script(tmp: Path) -> Path:
    script = tmp / "chat.lua"
    script.write_text(LUA % BODY)
    return script


def run_wrk(script: Path, base_url: str, connections: int, seconds: float) -> WrkResult:
    """`connections` keep-alive connections on one wrk thread for `seconds`."""
    wrk = tool("wrk", "wrk")
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        base_url + CHAT_PATH,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    got = json.loads(line.removeprefix("RESULT "))
    return WrkResult(
        requests=got["requests"],
        seconds=got["duration_us"] / 1e6,
        errors=got["errors"],
        p50_ms=got["p50_us"] / 1000,
        p90_ms=got["p90_us"] / 1000,
        p99_ms=got["p99_us"] / 1000,
    )
