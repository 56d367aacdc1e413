// lockgate dashboard: login, filters, fetching /ui/api/*, drawing charts and tables.
(function () {
"use strict";

const { lineChart, barChart } = window.LockgateCharts;
const $ = (id) => document.getElementById(id);
const KEY = "lockgate.key";
const PAGE = 25;
const state = { offset: 0, total: 0 };

const usd = (v) => (v >= 1 ? "$" + v.toFixed(2) : v >= 0.01 ? "$" + v.toFixed(4) : "$" + v.toPrecision(3));
const usdTick = (v) => (v === 0 ? "0" : usd(v));
const ms = (v) => (v == null ? "–" : v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms");
const pct = (v) => (v == null ? "–" : (v * 100).toFixed(1) + "%");
const count = (v) => (Number.isInteger(v) ? String(v) : v.toFixed(1));

async function api(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + sessionStorage.getItem(KEY) } });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error((body.error && body.error.message) || res.statusText);
    err.status = res.status;
    throw err;
  }
  return body;
}

function query(extra) {
  const p = new URLSearchParams({ since: $("range").value, ...extra });
  if ($("model").value) p.set("model", $("model").value);
  return p.toString();
}

function row(cells, header) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement(header ? "th" : "td");
    if (c instanceof Node) td.appendChild(c);
    else td.textContent = c == null ? "–" : String(c);
    if (!header && typeof c === "number") td.className = "num";
    tr.appendChild(td);
  }
  return tr;
}

function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren();
  const thead = document.createElement("thead");
  thead.appendChild(row(head, true));
  const tbody = document.createElement("tbody");
  rows.forEach((r) => tbody.appendChild(r instanceof Node ? r : row(r)));
  t.append(thead, tbody);
  return tbody;
}

// Every bucket of the range, so that quiet periods draw as zero instead of a straight line.
function buckets(frame) {
  const out = [];
  const start = Math.floor(Date.parse(frame.start) / 1000 / frame.bucket) * frame.bucket;
  for (let t = start; t * 1000 < Date.parse(frame.end); t += frame.bucket) out.push(t);
  return out;
}

function sumBy(points, key, valueOf) {
  const m = new Map();
  for (const p of points) m.set(key(p), (m.get(key(p)) || 0) + valueOf(p));
  return m;
}

function filled(slots, map) {
  return slots.map((t) => [t, map.get(t) || 0]);
}

function drawSeries(frame) {
  const slots = buckets(frame);
  const opts = { start: slots[0], end: Date.parse(frame.end) / 1000 };
  const groups = [...new Set(frame.points.map((p) => p.group ?? "(none)"))];
  const spend = groups.map((g) => ({
    name: g,
    points: filled(slots, sumBy(frame.points.filter((p) => (p.group ?? "(none)") === g), (p) => p.t, (p) => p.cost_nanos / 1e9)),
  }));
  lineChart($("chart-spend"), frame.points.length ? spend : [], { ...opts, format: usdTick });
  const total = (f) => filled(slots, sumBy(frame.points, (p) => p.t, f));
  const has = frame.points.length > 0;
  lineChart($("chart-requests"), has ? [
    { name: "requests", points: total((p) => p.requests) },
    { name: "errors", points: total((p) => p.errors), color: "#c0392b" },
  ] : [], { ...opts, format: count });
  lineChart($("chart-rates"), has ? [
    { name: "429 rate limited", points: total((p) => p.rate_limited), color: "#e4572e" },
    { name: "cache hits", points: total((p) => p.cache_hits), color: "#29a36a" },
  ] : [], { ...opts, format: count });
  const sum = (f) => frame.points.reduce((a, p) => a + f(p), 0);
  return {
    requests: sum((p) => p.requests), errors: sum((p) => p.errors), cost: sum((p) => p.cost_nanos) / 1e9,
    limited: sum((p) => p.rate_limited), hits: sum((p) => p.cache_hits),
  };
}

function drawLatency(frame) {
  const opts = { start: Date.parse(frame.start) / 1000, end: Date.parse(frame.end) / 1000, format: ms };
  const line = (q) => ({ name: q, points: frame.series.map((s) => [s.t, s[q]]) });
  lineChart($("chart-latency"), frame.series.length ? [line("p50"), line("p95"), line("p99")] : [], opts);
  barChart($("chart-deployments"),
    frame.deployments.map((d) => ({ label: d.deployment, values: [d.p50, d.p95, d.p99] })),
    ["p50", "p95", "p99"], { format: ms });
}

function drawLive(live) {
  const only = $("model").value;
  const mine = (m) => !only || m.model === only;
  barChart($("chart-ttft"),
    live.ttft.filter(mine).map((d) => ({ label: d.deployment, values: [d.p50_ms, d.p95_ms, d.p99_ms] })),
    ["p50 ≤", "p95 ≤", "p99 ≤"], { format: ms, empty: "No streamed requests yet" });
  const circuits = new Map(live.circuits.filter(mine).map((c) => [c.model, []]));
  live.circuits.filter(mine).forEach((c) => circuits.get(c.model).push(c.state === "closed" ? c.deployment : `${c.deployment} (${c.state})`));
  const cacheModels = (live.cache && live.cache.models) || {};
  table("models-table", ["model", "requests", "429 rate", "fallbacks", "fallback rate", "cache hit rate", "saved", "deployments"],
    [...new Set([...live.models.filter(mine).map((m) => m.model), ...circuits.keys()])].map((name) => {
      const m = live.models.find((x) => x.model === name) || {};
      const c = cacheModels[name];
      return [name, m.requests ?? 0, pct(m.rate_limited_rate), m.fallbacks ?? 0, pct(m.fallback_rate),
        c ? pct(c.hit_rate) : "–", c ? usd(c.saved_usd) : "–", (circuits.get(name) || []).join(", ")];
    }));
}

function drawBudgets(list) {
  table("budgets-table", ["scope", "period", "spent", "limit", "used"], list.map((b) => {
    const bg = document.createElement("span");
    bg.className = "bar-bg";
    const fg = document.createElement("span");
    fg.className = "bar-fg" + (b.used >= 1 ? " over" : "");
    fg.style.width = Math.min(100, (b.used || 0) * 100) + "%";
    bg.appendChild(fg);
    const cell = document.createElement("span");
    cell.append(bg, document.createTextNode(" " + pct(b.used)));
    return row([`${b.scope_kind}:${b.scope_id}`, b.period, usd(b.spent_nanos / 1e9), usd(b.limit_nanos / 1e9), cell]);
  }));
  if (!list.length) $("budgets-table").querySelector("tbody").appendChild(row(["No budgets configured"]));
}

function tile(label, value) {
  const d = document.createElement("div");
  d.className = "tile";
  const b = document.createElement("b");
  b.textContent = value;
  const s = document.createElement("span");
  s.textContent = label;
  d.append(b, s);
  return d;
}

async function loadRecent() {
  const status = $("status").value;
  const page = await api("/ui/api/recent?" + query({ limit: PAGE, offset: state.offset, ...(status ? { status } : {}) }));
  state.total = page.total;
  $("recent-count").textContent = `(${page.total} in range)`;
  $("page").textContent = page.total ? `${state.offset + 1}–${state.offset + page.rows.length} of ${page.total}` : "";
  $("prev").disabled = state.offset === 0;
  $("next").disabled = state.offset + PAGE >= page.total;
  const body = table("recent-table", ["time (UTC)", "request id", "model", "deployment", "key", "status", "latency", "tokens", "cost", "cache"],
    page.rows.map((r) => {
      const tr = row([r.created_at.slice(11, 19), r.request_id, r.model_group, r.deployment, r.key_id,
        r.status === "ok" ? "ok" : `${r.status} (${r.http_status})`, ms(r.latency_ms),
        r.prompt_tokens + r.completion_tokens, usd(r.cost_nanos / 1e9), r.cache_hit ? "hit" : ""]);
      tr.dataset.requestId = r.request_id;
      if (r.status !== "ok") tr.className = "err";
      return tr;
    }));
  body.onclick = (e) => {
    const tr = e.target.closest("tr");
    if (tr && tr.dataset.requestId) showDetail(tr.dataset.requestId);
  };
}

async function showDetail(id) {
  const d = await api("/ui/api/requests/" + encodeURIComponent(id));
  $("detail-id").textContent = id;
  const money = (k) => (k === "cost_nanos" ? `${usd(d[k] / 1e9)} (${d[k]} nano-USD)` : d[k]);
  table("detail-table", ["field", "value"], Object.keys(d).filter((k) => k !== "id").map((k) => [k, money(k)]));
  $("detail").showModal();
}

async function refresh() {
  $("notice").textContent = "";
  const by = $("by").value;
  try {
    const [series, latency, live, budgets] = await Promise.all([
      api("/ui/api/series?" + query({ by })), api("/ui/api/latency?" + query()),
      api("/ui/api/live"), api("/ui/api/budgets"),
    ]);
    const t = drawSeries(series);
    drawLatency(latency);
    drawLive(live);
    drawBudgets(budgets.budgets);
    const fallbacks = live.models.filter((m) => !$("model").value || m.model === $("model").value).reduce((a, m) => a + m.fallbacks, 0);
    const p95 = latency.models.length ? Math.max(...latency.models.map((m) => m.p95)) : null;
    $("tiles").replaceChildren(
      tile("requests", String(t.requests)), tile("error rate", pct(t.requests ? t.errors / t.requests : null)),
      tile("spend", usd(t.cost)), tile("429 rate", pct(t.requests ? t.limited / t.requests : null)),
      tile("cache hit rate", pct(t.requests ? t.hits / t.requests : null)),
      tile("saved by cache (process)", live.cache ? usd(live.cache.saved_usd) : "no cache"),
      tile("fallbacks (process)", String(fallbacks)), tile("worst p95 latency", ms(p95)),
      tile("in flight", String(live.in_flight)));
    await loadRecent();
    document.body.dataset.loaded = String(Date.now());
  } catch (err) {
    if (err.status === 401 || err.status === 403) return logout(err.message);
    $("notice").textContent = err.message;
  }
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  $("dash").hidden = true;
  $("filters").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
}

async function enter() {
  const me = await api("/ui/api/whoami");
  const select = $("model");
  select.replaceChildren(new Option("All models", ""));
  me.models.forEach((m) => select.appendChild(new Option(m, m)));
  $("login").hidden = true;
  $("dash").hidden = false;
  $("filters").hidden = false;
  if (!me.database) $("notice").textContent = "No database configured: only this process's metrics are shown.";
  else await refresh();
}

$("login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  sessionStorage.setItem(KEY, $("key").value);
  $("key").value = "";
  try {
    await enter();
  } catch (err) {
    logout(err.status === 401 || err.status === 403 ? "That key was refused." : err.message);
  }
});
for (const id of ["range", "model", "by"]) $(id).addEventListener("change", () => { state.offset = 0; refresh(); });
$("status").addEventListener("change", () => { state.offset = 0; loadRecent(); });
$("refresh").addEventListener("click", refresh);
$("logout").addEventListener("click", () => logout(""));
$("prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - PAGE); loadRecent(); });
$("next").addEventListener("click", () => { state.offset += PAGE; loadRecent(); });
$("detail-close").addEventListener("click", () => $("detail").close());
if (sessionStorage.getItem(KEY)) enter().catch((err) => logout(err.message));
setInterval(() => { if (!$("dash").hidden && !document.hidden) refresh(); }, 15000);
})();
