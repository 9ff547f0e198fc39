"""Real partitions (tests/netns.py): a write a node reported not committed, or unknown,
never overwrites a write acknowledged after it (issue 8, fault 1).

A follower is cut off (its bridge port down: packets dropped, no reset) while a
client writes through it, and every write it does not acknowledge is retried on the
same config key through the majority, as the client in the issue did; some retries
reuse the first attempt's Idempotency-Key, some are new writes. Writers send to every
node throughout. After three cuts and heals: no key holds a value older than its
last acknowledged one, no write answered `not_committed` was ever applied, and every
`unknown` answer resolves through GET /ha/requests/{id} to `applied` or `not_applied`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import requests

from tests import netns
from tests.writers import Writers

KEYS = 4  # the follower's writes cycle over this many config keys
CUTS = 3
FLOWING_SECS = 30.0  # longest wait for writes through the follower to be acknowledged again


@dataclass
class Attempt:
    node: str
    key: str
    value: int
    idempotency_key: str | None
    status: int | None
    body: dict[str, Any] | None

    @property
    def acknowledged(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> dict[str, Any]:
        return (self.body or {}).get("error") or {}


def _post(node: netns.NsNode, key: str, value: int, idempotency_key: str | None) -> Attempt:
    headers = dict(netns.ADMIN)
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    status, body = None, None
    try:
        resp = requests.post(
            node.url + "/ha/config", json={"key": key, "value": value}, headers=headers, timeout=10
        )
        status, body = resp.status_code, resp.json()
    except (requests.RequestException, ValueError):
        pass
    return Attempt(node.name, key, value, idempotency_key, status, body)


def _write_and_retry(
    follower: netns.NsNode,
    majority: list[netns.NsNode],
    record: list[Attempt],
    stop: threading.Event,
) -> None:
    """Write through the follower; retry each write it does not acknowledge through the
    majority until acknowledged: every other one under the same Idempotency-Key (the
    same request again), the others as a new write of a newer value to the same key."""
    value = 0
    while not stop.is_set():
        value += 1
        key = f"stale/{value % KEYS}"
        same = f"w-{value}" if value % 2 else None
        attempt = _post(follower, key, value, same)
        record.append(attempt)
        turn = 0
        while not attempt.acknowledged and not stop.is_set():
            if same is None:
                value += 1
            attempt = _post(majority[turn % len(majority)], key, value, same)
            record.append(attempt)
            turn += 1


def _lost(record: list[Attempt], final: dict[str, Any]) -> list[str]:
    """Keys whose final value is older than their last acknowledged write (values grow)."""
    problems = []
    for key in {a.key for a in record}:
        acked = [a.value for a in record if a.key == key and a.acknowledged]
        if acked and final.get(key) not in range(max(acked), 10**9):
            problems.append(f"{key}: holds {final.get(key)!r}, last acknowledged {max(acked)}")
    return problems


def _flowing(follower: netns.NsNode, record: list[Attempt], since: int) -> None:
    """Until the follower is caught up and has acknowledged a write of its own made after
    `record[since]`: writes flow through it again, so a cut now catches some in flight
    (and, after a heal, whatever TCP held back from before the cut has been delivered)."""

    def flowing() -> bool:
        acked = any(a.node == follower.name and a.acknowledged for a in record[since:])
        return acked and bool(follower.local()["caught_up"])

    netns.wait_for(flowing, timeout=FLOWING_SECS, what=f"writes through {follower.name}")


def _caught(follower: netns.NsNode, record: list[Attempt], since: int) -> None:
    """Until two writes sent through the cut-off follower after `record[since]` have been
    answered without an acknowledgement: the one in flight at the cut, which it gives up on
    after its commit timeout (3 s; `unknown` once the clock-skew allowance has passed too),
    and the next one it is sent once the majority has taken the retry. That is what a cut
    is for here; it slept a fixed 6 s."""

    def caught() -> bool:
        return sum(a.node == follower.name and not a.acknowledged for a in record[since:]) >= 2

    netns.wait_for(caught, timeout=FLOWING_SECS, what=f"writes through {follower.name} caught")


def _settle(mesh: netns.NetnsMesh, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until every node holds the same config; return it."""

    def same() -> dict[str, Any] | None:
        configs = [n.config()[0] for n in mesh.nodes]
        return configs[0] if all(c == configs[0] for c in configs) else None

    return netns.wait_for(same, timeout=timeout, interval=0.1, what="equal replicas")  # type: ignore[no-any-return]


def test_writes_reported_unknown_or_not_committed_never_overwrite_acknowledged_ones(
    netns_mesh: netns.NetnsMesh,
) -> None:
    mesh = netns_mesh
    leader = mesh.leader()
    follower = next(n for n in mesh.nodes if n is not leader)
    majority = [n for n in mesh.nodes if n is not follower]
    record: list[Attempt] = []
    stop = threading.Event()
    writer = threading.Thread(target=_write_and_retry, args=(follower, majority, record, stop))
    with Writers(mesh.nodes, headers=netns.ADMIN, prefix="bg", timeout=10) as background:
        writer.start()
        try:
            for _ in range(CUTS):
                _flowing(follower, record, len(record))
                cut_at = len(record)
                mesh.cut(follower)
                _caught(follower, record, cut_at)
                mesh.heal(follower)
            _flowing(follower, record, len(record))
        finally:
            mesh.heal_all()
            stop.set()
            writer.join(30)
    final = _settle(mesh)

    # Nothing acknowledged was overwritten by an older write, on either kind of key.
    assert not _lost(record, final)
    assert not background.lost(final)

    # Every answer that is not an acknowledgement says what is known, truthfully.
    failed = [a for a in record if not a.acknowledged]
    failed += [
        Attempt(w.node, w.key, w.value, None, w.status, w.body)
        for w in background.snapshot()
        if not w.acknowledged
    ]
    assert any(a.node == follower.name for a in failed), "the cut never refused a write"
    via = mesh.leader(among=majority)
    resolved = {"applied": 0, "not_applied": 0}
    for attempt in failed:
        assert attempt.status in (503, 504), attempt
        error = attempt.error
        assert error["outcome"] in ("not_committed", "unknown"), attempt
        if error["code"] == "NOT_CURRENT":
            # Refused while making the node current (ReadIndex), before the write was a
            # command: there is no request id, because nothing was sent.
            assert error["outcome"] == "not_committed" and "request_id" not in error, attempt
            continue
        assert error["request_id"], attempt
        params = {"expires_at": error["expires_at"]} if error["outcome"] == "unknown" else {}
        answer = requests.get(
            f"{via.url}/ha/requests/{error['request_id']}",
            params=params,
            headers=netns.ADMIN,
            timeout=5,
        ).json()
        if error["outcome"] == "not_committed":
            # "Never will be": nothing with that request id took effect from this attempt.
            if attempt.idempotency_key is None:
                assert answer["status"] != "applied", (attempt, answer)
        else:
            assert answer["status"] in ("applied", "not_applied"), (attempt, answer)
            resolved[answer["status"]] += 1

    # Same-key retries were applied at most once: one version per request id.
    for attempt in record:
        if attempt.idempotency_key and attempt.acknowledged:
            versions = {
                a.body["version"]
                for a in record
                if a.idempotency_key == attempt.idempotency_key and a.acknowledged and a.body
            }
            assert len(versions) == 1, attempt
    late = sum(n.proc.log().count(" refused: the leader took this command") for n in majority)
    print(f"unknown answers resolved: {resolved}; late commands refused by the leader: {late}")
