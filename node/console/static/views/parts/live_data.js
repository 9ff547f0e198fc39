// Data a view shows, kept current: fetched on mount, again on each /ws change of the
// view's op families (a change made through any node arrives on every node's feed), on
// a resync (the feed reconnected or the state was reset), and every `everyMs` for hot
// state that no command carries (worker health, load). Refetches never overlap: changes
// that arrive during one fetch cause one more (a tenant user's /api calls are limited).
import { useState, useEffect, useRef, useCallback } from "../../lib/html.js";
import { subscribe } from "../../lib/live.js";

const family = (op) => (typeof op === "string" ? op.split(".")[0] : "");

export function useLiveData(load, families, everyMs = 0) {
  const [state, setState] = useState({ data: null, error: null });
  const latest = useRef(load);
  latest.current = load;
  const flight = useRef({ running: false, again: false, mounted: true });

  const reload = useCallback(async () => {
    const f = flight.current;
    if (f.running) {
      f.again = true;
      return;
    }
    f.running = true;
    try {
      const data = await latest.current();
      if (f.mounted) setState({ data, error: null });
    } catch (error) {
      if (f.mounted) setState((s) => ({ data: s.data, error }));
    } finally {
      f.running = false;
      if (f.again && f.mounted) {
        f.again = false;
        reload();
      }
    }
  }, []);

  useEffect(() => {
    flight.current.mounted = true;
    reload();
    const off = subscribe((event) => {
      if (event.type === "resync" || (event.type === "change" && families.includes(family(event.op)))) {
        reload();
      }
    });
    const timer = everyMs > 0 ? setInterval(reload, everyMs) : null;
    return () => {
      flight.current.mounted = false;
      off();
      if (timer) clearInterval(timer);
    };
  }, [reload, families.join(","), everyMs]);

  return { ...state, reload };
}
