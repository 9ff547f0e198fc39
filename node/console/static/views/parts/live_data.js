// Data a view shows, kept current: fetched on mount, again on each /ws change of the
// view's op families (a change made through any node arrives on every node's feed), on
// a resync (the feed reconnected or the state was reset), and every `everyMs` for hot
// state that no command carries (worker health, load).
import { useState, useEffect, useRef, useCallback } from "../../lib/html.js";
import { subscribe } from "../../lib/live.js";

const family = (op) => (typeof op === "string" ? op.split(".")[0] : "");

export function useLiveData(load, families, everyMs = 0) {
  const [state, setState] = useState({ data: null, error: null });
  const latest = useRef(load);
  latest.current = load;
  const generation = useRef(0);

  const reload = useCallback(async () => {
    const mine = ++generation.current; // an older answer never overwrites a newer one
    try {
      const data = await latest.current();
      if (mine === generation.current) setState({ data, error: null });
    } catch (error) {
      if (mine === generation.current) setState((s) => ({ data: s.data, error }));
    }
  }, []);

  useEffect(() => {
    reload();
    const off = subscribe((event) => {
      if (event.type === "resync" || (event.type === "change" && families.includes(family(event.op)))) {
        reload();
      }
    });
    const timer = everyMs > 0 ? setInterval(reload, everyMs) : null;
    return () => {
      generation.current++;
      off();
      if (timer) clearInterval(timer);
    };
  }, [reload, families.join(","), everyMs]);

  return { ...state, reload };
}
