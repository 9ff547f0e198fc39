// A rolling restart driven by the page, with the order and safety rules of
// `meshgate cluster rolling-restart` (node/cluster_cli.py): refuse unless every voter but
// one could go down and leave a majority; read-only members first, then followers by name,
// the leader last; each node must come back (a new boot id) ready and caught up, and still
// be so `settle` seconds later, before the next one goes. The page asks its own node (a
// page may not read other origins); when that node is the one restarting, it waits for it.
import { api, ApiError } from "../lib/api.js";

export const DEFAULT_SETTLE_SECS = 3; // as the CLI's: the shipped HAProxy's time to put a node back
export const NODE_TIMEOUT_SECS = 180;
const POLL_MS = 200;

const serving = (n) => n.status === "alive" && Boolean(n.ready);
// `ready` is the data plane only: a voter counts towards the majority when also caught up.
const healthy = (n) => serving(n) && Boolean(n.caught_up);
const voter = (n) => n.voter ?? true;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Refused extends Error {}

// Read-only members first, then followers by name, the leader last.
export function restartOrder(status) {
  const leader = status.leader?.name ?? null;
  const key = (n) => [voter(n) ? 1 : 0, n.name === leader ? 1 : 0, n.name];
  return status.nodes
    .filter((n) => n.name)
    .sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      return x[0] - y[0] || x[1] - y[1] || (x[2] < y[2] ? -1 : x[2] > y[2] ? 1 : 0);
    });
}

// Why a restart must not start now (the CLI's words), or null.
export function restartProblem(status) {
  const voters = status.nodes.filter(voter);
  const healthyCount = voters.filter(healthy).length;
  const majority = Math.floor(voters.length / 2) + 1;
  if (!status.leader || !status.has_quorum) return "the group has no leader or no quorum; fix that first";
  if (healthyCount - 1 < majority) {
    const sick = voters.filter((n) => !healthy(n)).map((n) => `${n.name} (${n.status})`);
    return (
      `refusing to start: ${healthyCount} of ${voters.length} voters are healthy, and taking ` +
      `one down must leave a majority of ${majority}` +
      (sick.length ? `; not healthy: ${sick.join(", ")}` : "")
    );
  }
  return null;
}

// Restart every node; onStep({name, phase: "restarting"|"settling"|"done", secs}) reports.
export async function rollingRestart({ settleSecs = DEFAULT_SETTLE_SECS, onStep = () => {} } = {}) {
  const status = await api("GET", "/ha/status");
  const problem = restartProblem(status);
  if (problem) throw new Refused(problem);
  const done = [];
  for (const node of restartOrder(status)) {
    const started = Date.now();
    const deadline = started + NODE_TIMEOUT_SECS * 1000;
    onStep({ name: node.name, phase: "restarting" });
    await shutDown(node.name, node.name === status.node_name);
    const boot = await waitBack(node, deadline);
    onStep({ name: node.name, phase: "settling" });
    await waitSettled(node.name, boot, settleSecs, deadline);
    onStep({ name: node.name, phase: "done", secs: (Date.now() - started) / 1000 });
    done.push(node.name);
  }
  await waitHealthy(Date.now() + NODE_TIMEOUT_SECS * 1000);
  return done;
}

async function shutDown(name, isSelf) {
  try {
    await api("POST", "/ha/shutdown", { target: name });
  } catch (e) {
    // This page's own node may stop before its answer arrives: whether the plan
    // committed shows in the wait for a new boot id that follows.
    if (!(isSelf && e instanceof ApiError && (e.status === 0 || e.status >= 500))) throw e;
  }
}

// Our node's /ha/status, or null while it does not answer (it may be the one restarting).
async function status() {
  try {
    return await api("GET", "/ha/status");
  } catch (e) {
    if (e instanceof ApiError && (e.status === 0 || e.status >= 500)) return null;
    throw e;
  }
}

const seen = (s, name) => s?.nodes.find((n) => n.name === name) ?? null;

// Until a new run of the node (a new boot id) is ready and caught up; its boot id.
async function waitBack(node, deadline) {
  let last = "no answer yet";
  while (Date.now() < deadline) {
    const n = seen(await status(), node.name);
    if (n && n.boot_id !== node.boot_id && serving(n)) {
      if (n.caught_up) return n.boot_id;
      last = `${node.name} is ready but not caught up yet`;
    } else {
      last = `${node.name}: ${n?.status}, ready=${n?.ready}`;
    }
    await sleep(POLL_MS);
  }
  throw new Refused(`${node.name} did not come back ready and caught up in time (${last}); stopping the rolling restart here`);
}

// `settle` seconds after it came back, still this run, healthy; else wait a whole settle again.
async function waitSettled(name, boot, settleSecs, deadline) {
  for (;;) {
    await sleep(settleSecs * 1000);
    const n = seen(await status(), name);
    if (n && n.boot_id === boot && healthy(n)) return;
    if (Date.now() > deadline) {
      throw new Refused(
        `this node does not see ${name} healthy yet (status=${n?.status}, ready=${n?.ready}, ` +
          `caught_up=${n?.caught_up}); stopping the rolling restart here`,
      );
    }
    await sleep(POLL_MS);
  }
}

async function waitHealthy(deadline) {
  for (;;) {
    const s = await status();
    const problem = s ? restartProblem(s) : "this node does not answer";
    if (problem === null) return;
    if (Date.now() > deadline) throw new Refused(problem);
    await sleep(POLL_MS);
  }
}
