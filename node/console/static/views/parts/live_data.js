// Data a view shows, kept current: lib/poll.js's usePoll (now, on a resync, and every
// `everyMs`), and at once on each /ws change of the view's op families (a change made
// through any node arrives on every node's feed). Without hot state to watch, the poll is
// only a backstop for an event the page missed.
import { useEffect } from "../../lib/html.js";
import { usePoll } from "../../lib/poll.js";
import { subscribe } from "../../lib/live.js";

const BACKSTOP_MS = 30000;

const family = (op) => (typeof op === "string" ? op.split(".")[0] : "");

export function useLiveData(load, families, everyMs = BACKSTOP_MS) {
  const polled = usePoll(load, everyMs);
  const { refresh } = polled;
  const watched = families.join(",");
  useEffect(
    () => subscribe((event) => event.type === "change" && families.includes(family(event.op)) && refresh()),
    [refresh, watched],
  );
  return { ...polled, reload: refresh };
}
