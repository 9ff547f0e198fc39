"""The node's control loop: read one view, take the one step it calls for, say what it did.

Patroni's `run_cycle` is the model. Every duty a node owes the mesh once it
runs (announcing itself, recording that the mesh requires credentials,
registering its `--worker-urls`, carrying out a shutdown plan that names it,
resuming its own discovery jobs, adopting stranded ones and sealing
plaintext worker keys, or keys sealed under a rotated-out mesh secret, as
leader) is one branch of `decide`, a pure function of a `View` read at once.
`ControlLoop.run_cycle` carries the chosen step out and returns a sentence;
the loop logs the sentence when it changes, and `/ha/local` shows the last one.
After a step it runs again at once; when there is nothing to do it waits for
the next tick. A duty that fails backs off for a moment while the others go on.
A committed shutdown plan is carried out as it is applied (`follow_plans`),
not a cycle later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mesh.raft import CommitError, MeshRaft
from node.errors import ApiError
from node.ha import name_claim
from node.ha.shutdown import Stopper
from node.service import cancel_and_wait
from node.workers.credentials import CredentialBox, needs_sealing
from node.workers.discovery import DiscoveryJobs

log = logging.getLogger(__name__)

WAITING_PAUSE = 0.05  # between cycles while there is no leader yet: announce promptly
RETRY_PAUSE = 0.5  # while the only duties left are ones that failed a moment ago
BACKOFF = 1.0  # a duty that failed is tried again after this long; the others go first

Commit = Callable[[str, dict[str, Any]], Awaitable[Any]]
Register = Callable[[str, "tuple[str, str] | None"], Awaitable[None]]
Probe = Callable[[str], Awaitable["dict[str, Any] | None"]]  # a node's /ha/local, if it answers


async def _nobody_answers(http_url: str) -> dict[str, Any] | None:
    return None


def _not_known() -> bool:
    return False


@dataclass(frozen=True)
class View:
    """What one cycle decides from, read in one go."""

    stopping: str | None  # the stopper's step, once a stop was requested
    plan: dict[str, Any] | None  # a committed shutdown plan for this run, not acted on yet
    leader: str | None
    caught_up_once: bool  # Raft has applied what the leader had committed, since start
    is_leader: bool
    announced: bool
    auth_to_record: bool  # this node is guarded, and the mesh has not recorded it yet
    to_register: tuple[tuple[str, tuple[str, str] | None], ...]  # configured URLs left to do
    to_resume: tuple[str, ...]  # this node's pending discovery jobs that are not running
    stranded: tuple[str, ...]  # on the leader: pending workers nobody has touched lately
    # On the leader: workers whose api_key is stored in the clear, or (once every node sends
    # with this node's mesh secret) sealed under the previous secret only.
    to_seal: tuple[str, ...]
    role: str = "follower"
    workers: int = 0
    backing_off: frozenset[str] = frozenset()  # duties that failed a moment ago
    name_record: dict[str, Any] | None = None  # our name's record, left by another run


@dataclass(frozen=True)
class Step:
    """One thing to do (`kind`), on what (`subject`)."""

    kind: str
    subject: Any = None


def decide(view: View) -> Step:
    """The first duty the view calls for, in order of precedence."""
    if view.stopping is not None:
        return Step("stopping", view.stopping)
    if view.plan is not None:
        return Step("follow_plan", view.plan)
    if view.leader is None:
        return Step("wait", "waiting for a leader")
    if not view.caught_up_once:
        return Step("wait", f"catching up with leader {view.leader}")
    if not view.announced and view.name_record is not None:
        return Step("check_name", view.name_record)  # before anything done in our name
    due = _duties(view)
    for step in due:
        if step.kind not in view.backing_off:
            return step
    if due:  # only duties that failed a moment ago: try them again shortly
        return Step("backoff", "retrying " + ", ".join(_DOING[step.kind] for step in due))
    return Step("steady", f"steady: {view.role}, {view.workers} worker(s) in the mesh")


def _duties(view: View) -> list[Step]:
    """What is left to do, in order. Starting jobs commits nothing, so it comes first; a
    duty that keeps failing (a refused announce, say) backs off and lets the others run."""
    due = []
    if view.to_resume:
        due.append(Step("resume", view.to_resume))
    if view.stranded:
        due.append(Step("adopt", view.stranded))
    if not view.announced:
        due.append(Step("announce"))
    if view.auth_to_record:
        due.append(Step("require_auth"))
    if view.to_register:
        due.append(Step("register", view.to_register[0]))
    if view.to_seal:
        due.append(Step("seal", view.to_seal[0]))
    return due


@dataclass
class Identity:
    """This run of the node, as its membership record says it."""

    name: str
    boot_id: str
    started_at: float
    version: str
    http_url: str | None
    voter: bool
    raft_address: str | None

    def member(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "raft_address": self.raft_address,
            "http_url": self.http_url,
            "version": self.version,
            "voter": self.voter,
            "boot_id": self.boot_id,
            "started_at": self.started_at,
        }


@dataclass
class LastCycle:
    """What `/ha/local` shows: the last sentence, since when, and how many cycles ran."""

    sentence: str = "not started"
    since: float = field(default_factory=time.time)
    cycles: int = 0

    def report(self) -> dict[str, Any]:
        return {"last": self.sentence, "since": self.since, "cycles": self.cycles}


class ControlLoop:
    """Runs `decide` against the node's parts, one step a cycle."""

    def __init__(
        self,
        identity: Identity,
        raft: MeshRaft,
        stopper: Stopper,
        discovery: DiscoveryJobs,
        credentials: CredentialBox,
        commit: Commit,
        register: Register,
        *,
        worker_urls: list[tuple[str, tuple[str, str] | None]],
        guarded: bool,
        actor: str,
        interval: Callable[[], float],
        stale_job_after: float,
        probe: Probe = _nobody_answers,
        everyone_sends_mine: Callable[[], bool] = _not_known,
    ) -> None:
        self.identity = identity
        self.raft = raft
        self.stopper = stopper
        self.discovery = discovery
        self.credentials = credentials
        self.commit = commit
        self.register = register
        self.worker_urls = worker_urls
        self.guarded = guarded
        self.actor = actor
        self.interval = interval
        self.stale_job_after = stale_job_after
        self.probe = probe
        self.everyone_sends_mine = everyone_sends_mine
        self._cleared_boot_ids: set[str] = set()  # earlier holders of our name found gone
        self.last = LastCycle()
        self.announced = False
        self._registered: set[str] = set()
        self._followed_plans: set[str] = set()
        self._failed_at: dict[str, float] = {}  # duty -> time.monotonic() of its last failure
        self._task: asyncio.Task[None] | None = None

    # -- reading ---------------------------------------------------------------------

    def view(self) -> View:
        status = self.raft.status()
        state = self.raft.state
        now = time.time()
        leading = status.is_leader
        workers = state.workers
        return View(
            stopping=self.stopper.step if self.stopper.requested else None,
            plan=self._plan_for_me(state.shutdowns),
            leader=status.leader,
            caught_up_once=status.ready,
            is_leader=leading,
            announced=self.announced,
            auth_to_record=self.guarded and not state.auth_required,
            to_register=tuple(
                (url, cred) for url, cred in self.worker_urls if url not in self._registered
            ),
            to_resume=tuple(
                worker_id
                for worker_id, record in workers.items()
                if record["status"] == "pending"
                and record.get("created_by", "").startswith(self.actor)
                and worker_id not in self.discovery.jobs
            ),
            stranded=tuple(
                worker_id
                for worker_id, record in workers.items()
                if leading
                and record["status"] == "pending"
                and worker_id not in self.discovery.jobs
                and now - record["updated_at"] > self.stale_job_after
            ),
            to_seal=self._to_seal(workers) if leading else (),
            role=status.role,
            workers=len(workers),
            backing_off=frozenset(
                kind
                for kind, failed in self._failed_at.items()
                if time.monotonic() - failed < BACKOFF
            ),
            name_record=name_claim.record_to_check(
                state.members, self.identity.name, self.identity.boot_id, self._cleared_boot_ids
            ),
        )

    def _to_seal(self, workers: dict[str, dict[str, Any]]) -> tuple[str, ...]:
        plain = tuple(w for w, r in workers.items() if needs_sealing(r))
        under_previous = self.credentials.under_previous
        rotated = tuple(w for w, r in workers.items() if under_previous(r.get("api_key")))
        # Re-sealed only once every node can open what this one seals: else a node that
        # does not hold our secret yet would lose the credential.
        return plain + (rotated if rotated and self.everyone_sends_mine() else ())

    def _plan_for_me(self, shutdowns: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
        for plan_id, plan in shutdowns.items():
            if plan_id in self._followed_plans:
                continue
            if plan["targets"].get(self.identity.name) == self.identity.boot_id:
                return plan
        return None

    # -- acting ----------------------------------------------------------------------

    async def run_cycle(self) -> tuple[str, float]:
        """Take the step the view calls for: what was done, and how long to pause before
        the next cycle (none after a step; briefly while waiting for a leader)."""
        step = decide(self.view())
        kind, subject = step.kind, step.subject
        if kind == "stopping":
            return f"stopping: {subject}", self.interval()
        if kind == "wait":
            return subject, WAITING_PAUSE
        if kind == "backoff":
            return subject, RETRY_PAUSE
        if kind == "steady":
            return subject, self.interval()
        try:
            done = await self._act(kind, subject)
        except (CommitError, ApiError) as exc:  # without quorum this may take a while
            self._failed_at[kind] = time.monotonic()
            return f"{_DOING[kind]} failed ({exc}); retrying", 0.0
        self._failed_at.pop(kind, None)
        return done, 0.0

    def follow_plans(self) -> None:
        """Carry out, now, a committed shutdown plan that names this run of the node (called
        as the plan is applied, so no step in progress delays it)."""
        plan = self._plan_for_me(self.raft.state.shutdowns)
        if plan is not None and not self.stopper.requested:
            self._follow(plan)

    async def _act(self, kind: str, subject: Any) -> str:
        if kind == "follow_plan":
            return self._follow(subject)
        if kind == "check_name":
            return await self._check_name(subject)
        if kind == "announce":
            await self.commit("member.upsert", {"member": self.identity.member()})
            self.announced = True
            return f"announced this node to the mesh (boot id {self.identity.boot_id})"
        if kind == "require_auth":
            await self.commit("auth.require", {})
            return "recorded that the mesh requires credentials"
        if kind == "register":
            url, userinfo = subject
            await self.register(url, userinfo)
            self._registered.add(url)
            return f"registered worker {url}"
        if kind in ("resume", "adopt"):
            for worker_id in subject:
                self.discovery.start(worker_id)
            if kind == "resume":
                return f"resumed {len(subject)} discovery job(s) this node started"
            return f"adopted {len(subject)} stranded discovery job(s)"
        if kind == "seal":
            record = self.raft.state.workers[subject]
            changes = {"api_key": self.credentials.reseal(record["api_key"])}
            args = {"id": subject, "changes": changes, "expected_version": record["version"]}
            await self.commit("worker.update", args)
            return f"sealed the api_key of worker {subject}"
        raise AssertionError(f"unknown step {kind}")

    def _follow(self, plan: dict[str, Any]) -> str:
        self._followed_plans.add(plan["id"])
        self.stopper.follow(plan)
        return f"carrying out shutdown plan {plan['id']} from {plan['requested_by']}"

    async def _check_name(self, record: dict[str, Any]) -> str:
        """Refuse to start if a live node holds our name; else take it over."""
        me = self.identity
        url = record.get("http_url")
        report = await self.probe(url) if url else None
        problem = name_claim.conflict(me.name, me.raft_address, me.boot_id, record, report)
        if problem is not None:
            log.error("refusing to start: %s", problem)
            self.stopper.refuse(problem)
            return f"refused to announce: {problem}"
        self._cleared_boot_ids.add(str(record.get("boot_id")))
        return f"name {me.name} was held by boot id {record.get('boot_id')}, gone: taking it over"

    # -- the loop --------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="control-loop")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                sentence, pause = await self.run_cycle()
            except Exception as exc:  # a bug in a step must not end the node's duties
                log.exception("control loop: cycle failed")
                sentence, pause = f"cycle failed ({type(exc).__name__}); retrying", RETRY_PAUSE
            self._record(sentence)
            await asyncio.sleep(pause)  # 0 after a step: let the others run, then go on

    def _record(self, sentence: str) -> None:
        self.last.cycles += 1
        if sentence != self.last.sentence:
            self.last.sentence, self.last.since = sentence, time.time()
            log.info("control loop: %s", sentence)


_DOING = {
    "follow_plan": "carrying out the shutdown plan",
    "check_name": "checking who holds this node's name",
    "announce": "announcing this node",
    "require_auth": "recording that the mesh requires credentials",
    "register": "registering a worker",
    "resume": "resuming discovery",
    "adopt": "adopting discovery jobs",
    "seal": "sealing a worker's api_key",
}
