// The Traffic view: request rate, error rate, p50/p99 latency and time to first token, per
// node and per model, over the last minutes, drawn with uPlot from GET /ha/traffic
// (?scope=mesh: every node's own summary; a node that does not answer is named).
import { html, useState, useEffect, useRef, useMemo } from "../lib/html.js";
import { api } from "../lib/api.js";
import { usePoll } from "../lib/poll.js";
import uPlot from "../vendor/uPlot.esm.js";

const POLL_MS = 5000;
const WINDOWS = [5, 10, 30]; // minutes
const TOTAL = ""; // the model selector's "every model"
const HEIGHT = 180;
const COLORS = ["#2459c7", "#b3261e", "#a15c00", "#1e7b3c"];
// Each chart: its title, unit, and the columns of /ha/traffic it draws.
const CHARTS = [
  { id: "requests", title: "Requests", unit: "req/s", columns: [["requests_per_s", "requests/s"]] },
  {
    id: "errors",
    title: "Errors",
    unit: "req/s",
    columns: [["errors_per_s", "5xx/s"], ["rejected_per_s", "refused 4xx/s"]],
  },
  {
    id: "latency",
    title: "Latency",
    unit: "ms",
    columns: [["latency_p50_ms", "p50 ms"], ["latency_p99_ms", "p99 ms"]],
  },
  {
    id: "ttft",
    title: "Time to first token (streams)",
    unit: "ms",
    columns: [["ttft_p50_ms", "p50 ms"], ["ttft_p99_ms", "p99 ms"]],
  },
];

let cssAdded = false;
function addChartCss() {
  if (cssAdded) return; // uPlot's own stylesheet, once (the CSP allows only files of ours)
  const link = document.createElement("link");
  link.rel = "stylesheet";
  link.href = new URL("../vendor/uPlot.min.css", import.meta.url).href;
  document.head.append(link);
  cssAdded = true;
}

export default function TrafficView() {
  const [minutes, setMinutes] = useState(10);
  const [node, setNode] = useState(null);
  const [model, setModel] = useState(TOTAL);
  const { data: fresh, error, refresh } = usePoll(
    () => api("GET", `/ha/traffic?scope=mesh&minutes=${minutes}`),
    POLL_MS,
  );
  useEffect(() => {
    refresh(); // a new window: fetch it now, not at the next poll
  }, [minutes]);
  // Names come from the API: own keys only ('toString' is a model name, not a method).
  const names = fresh ? Object.keys(fresh.nodes).sort() : [];
  const shown = node !== null && names.includes(node) ? node : names[0] ?? null;
  const summary = shown !== null && Object.hasOwn(fresh.nodes, shown) ? fresh.nodes[shown] : null;
  const models = summary ? Object.keys(summary.models) : [];
  const chosen = summary && model !== TOTAL && Object.hasOwn(summary.models, model) ? model : TOTAL;
  const columns = summary ? (chosen === TOTAL ? summary.total : summary.models[chosen]) : null;
  useEffect(() => {
    if (summary && chosen !== model) setModel(TOTAL); // the model is gone from this answer
  }, [summary, chosen, model]);
  useEffect(addChartCss, []);
  return html`<section data-view="traffic">
    <h2>Traffic</h2>
    ${error ? html`<p class="error" data-error="form">${error.message}</p>` : null}
    <div class="actions">
      <label>Node
        <select name="node" value=${shown ?? ""} onChange=${(e) => setNode(e.target.value)}>
          ${names.map((n) => html`<option value=${n}>${n}</option>`)}
        </select>
      </label>
      <label>Model
        <select name="model" value=${chosen} onChange=${(e) => setModel(e.target.value)}>
          <option value=${TOTAL}>every model</option>
          ${models.map((m) => html`<option value=${m}>${m}</option>`)}
        </select>
      </label>
      <label>Window
        <select name="minutes" value=${minutes} onChange=${(e) => setMinutes(Number(e.target.value))}>
          ${WINDOWS.map((m) => html`<option value=${m}>last ${m} minutes</option>`)}
        </select>
      </label>
    </div>
    ${fresh && fresh.missing?.length
      ? html`<p class="notice" data-error="missing">
          Not answering: ${fresh.missing.map((m) => `${m.node} (${m.error})`).join(", ")}
        </p>`
      : null}
    ${columns ? html`<${Totals} columns=${columns} />` : html`<p class="loading">Loading…</p>`}
    ${columns
      ? CHARTS.map((c) => html`<${Chart} key=${c.id} chart=${c} at=${summary.at} columns=${columns} />`)
      : null}
  </section>`;
}

function sum(values) {
  return values.reduce((a, b) => a + (b ?? 0), 0);
}

function Totals({ columns }) {
  const peak = (name) => Math.max(0, ...columns[name].filter((v) => v !== null));
  return html`<dl class="summary" data-table="traffic-totals">
    <dt>Requests</dt><dd data-total="requests">${sum(columns.requests)}</dd>
    <dt>Errors (5xx)</dt><dd data-total="errors">${sum(columns.errors)}</dd>
    <dt>Refused (the node's own 4xx)</dt><dd data-total="rejected">${sum(columns.rejected)}</dd>
    <dt>Worst p99 latency</dt><dd data-total="latency_p99_ms">${peak("latency_p99_ms")} ms</dd>
  </dl>`;
}

// The last bucket with a value in any of the chart's series (the legend shows it).
function lastIndex(series) {
  for (let i = series[0].length - 1; i >= 0; i--) {
    if (series.some((s) => s[i] !== null && s[i] !== 0)) return i;
  }
  return series[0].length - 1;
}

function Chart({ chart, at, columns }) {
  const box = useRef(null);
  const plot = useRef(null);
  const series = useMemo(() => chart.columns.map(([name]) => columns[name]), [chart, columns]);
  const latest = useRef(series);
  latest.current = series;
  useEffect(() => {
    const width = Math.max(320, (box.current.clientWidth || 640) - 8);
    plot.current = new uPlot(
      {
        width,
        height: HEIGHT,
        scales: { x: { time: true } },
        series: [
          { label: "time" },
          ...chart.columns.map(([, label], i) => ({
            label,
            stroke: COLORS[i % COLORS.length],
            width: 2,
            spanGaps: false,
            value: (_u, v) => (v === null || v === undefined ? "—" : `${v}`),
          })),
        ],
        axes: [{}, { label: chart.unit }],
        legend: { live: true },
        // uPlot ignores the legend until it is ready: show the latest values then.
        hooks: { ready: [(u) => u.setLegend({ idx: lastIndex(latest.current) })] },
      },
      [at, ...series],
      box.current,
    );
    return () => plot.current.destroy();
  }, [chart]);
  useEffect(() => {
    plot.current.setData([at, ...series]);
    plot.current.setLegend({ idx: lastIndex(series) });
  }, [at, series]);
  return html`<figure class="chart" data-chart=${chart.id}>
    <figcaption>${chart.title}</figcaption>
    <div ref=${box}></div>
  </figure>`;
}
