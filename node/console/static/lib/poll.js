// usePoll(fn, ms): call the async fn now, every ms while mounted, and on a live `resync`.
// Returns {data, error, loading, refresh}: the last answer, the last failure (an ApiError,
// cleared by the next success), whether the first call is still out, and a refetch now.
import { useState, useEffect, useRef, useCallback } from "./html.js";
import { subscribe } from "./live.js";

export function usePoll(fn, ms) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const latest = useRef(fn);
  latest.current = fn;
  const tick = useRef(() => {});
  useEffect(() => {
    let alive = true;
    let busy = false;
    let again = false; // a refresh asked while a call was out: call once more after it
    tick.current = async () => {
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        const data = await latest.current();
        if (alive) setState({ data, error: null, loading: false });
      } catch (error) {
        if (alive) setState((s) => ({ data: s.data, error, loading: false }));
      } finally {
        busy = false;
        if (again && alive) {
          again = false;
          tick.current();
        }
      }
    };
    tick.current();
    const timer = setInterval(() => tick.current(), ms);
    const off = subscribe((event) => event.type === "resync" && tick.current());
    return () => {
      alive = false;
      clearInterval(timer);
      off();
    };
  }, [ms]);
  const refresh = useCallback(() => tick.current(), []);
  return { ...state, refresh };
}
