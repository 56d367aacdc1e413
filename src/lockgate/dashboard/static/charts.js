// lockgate dashboard: small SVG charts (time-series lines and horizontal bars), no library.
(function () {
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const PALETTE = ["#2f6fdf", "#e4572e", "#29a36a", "#9b5de5", "#f2a541", "#17becf", "#d6336c", "#6c757d"];

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function timeLabel(t, span) {
  const d = new Date(t * 1000);
  const hm = d.toISOString().slice(11, 16);
  return span > 2 * 86400 ? d.toISOString().slice(5, 10) + " " + hm : hm;
}

function legend(host, series) {
  const box = document.createElement("div");
  box.className = "legend";
  series.forEach((s, i) => {
    const item = document.createElement("span");
    item.className = "legend-item";
    const sw = document.createElement("i");
    sw.style.background = s.color || PALETTE[i % PALETTE.length];
    item.append(sw, document.createTextNode(s.name));
    box.appendChild(item);
  });
  host.appendChild(box);
}

// series: [{name, points: [[t, v], ...]}]; opts: {start, end, format, empty}
function lineChart(host, series, opts) {
  host.replaceChildren();
  const W = 560, H = 220, L = 72, R = 22, T = 12, B = 26;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" }, host);
  const fmt = opts.format || String;
  const all = series.flatMap((s) => s.points);
  svg.dataset.series = String(series.length);
  svg.dataset.points = String(all.length);
  if (all.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg).textContent =
      opts.empty || "No data in this range";
    return svg;
  }
  const x0 = opts.start, x1 = Math.max(opts.end, x0 + 1);
  const yMax = niceMax(Math.max(...all.map((p) => p[1])));
  const sx = (t) => L + ((t - x0) / (x1 - x0)) * (W - L - R);
  const sy = (v) => H - B - (v / yMax) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = (yMax * i) / 4, y = sy(v);
    el("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }, svg);
    el("text", { x: L - 6, y: y + 4, "text-anchor": "end", class: "tick" }, svg).textContent = fmt(v);
  }
  for (let i = 0; i <= 4; i++) {
    const t = x0 + ((x1 - x0) * i) / 4;
    el("text", { x: sx(t), y: H - 8, "text-anchor": "middle", class: "tick" }, svg).textContent =
      timeLabel(t, x1 - x0);
  }
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    const pts = [...s.points].sort((a, b) => a[0] - b[0]);
    const d = pts.map((p, j) => `${j ? "L" : "M"}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    const path = el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series" }, svg);
    path.dataset.name = s.name;
    path.dataset.points = String(pts.length);
    path.dataset.total = String(pts.reduce((a, p) => a + p[1], 0));
    for (const p of pts) {
      const c = el("circle", { cx: sx(p[0]), cy: sy(p[1]), r: 2.5, fill: color, class: "point" }, svg);
      el("title", {}, c).textContent = `${s.name} ${timeLabel(p[0], 0)}: ${fmt(p[1])}`;
    }
  });
  legend(host, series);
  return svg;
}

// rows: [{label, values: [v1, v2, ...]}], names: value names (e.g. p50, p95, p99)
function barChart(host, rows, names, opts) {
  host.replaceChildren();
  const fmt = opts.format || String;
  const rowH = 14 * names.length + 10;
  const W = 560, L = 170, R = 60, T = 6;
  const H = Math.max(60, T + rows.length * rowH + 6);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart bars", role: "img" }, host);
  svg.dataset.bars = String(rows.length * names.length);
  if (rows.length === 0) {
    el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "empty" }, svg).textContent =
      opts.empty || "No data in this range";
    return svg;
  }
  const vMax = niceMax(Math.max(...rows.flatMap((r) => r.values.filter((v) => v != null))));
  rows.forEach((r, i) => {
    const y = T + i * rowH;
    const label = r.label.length > 26 ? r.label.slice(0, 25) + "…" : r.label;
    el("text", { x: L - 8, y: y + rowH / 2 + 2, "text-anchor": "end", class: "tick" }, svg).textContent = label;
    r.values.forEach((v, j) => {
      if (v == null) return;
      const w = Math.max(1, (v / vMax) * (W - L - R));
      const bar = el("rect", { x: L, y: y + j * 14, width: w, height: 11, fill: PALETTE[j % PALETTE.length], class: "bar" }, svg);
      bar.dataset.value = String(v);
      el("title", {}, bar).textContent = `${r.label} ${names[j]}: ${fmt(v)}`;
      el("text", { x: L + w + 4, y: y + j * 14 + 9, class: "tick" }, svg).textContent = fmt(v);
    });
  });
  legend(host, names.map((n) => ({ name: n })));
  return svg;
}

window.LockgateCharts = { lineChart, barChart, PALETTE };
})();
