// f, f' and f'' over a range, as SVG: a curve and a point per value. Each point carries its
// series, x and y in data attributes (the numbers exactly as the service sent them).

import { fmt, svgElement, text } from "./svg.js";

const WIDTH = 720;
const HEIGHT = 400;
const MARGIN = { left: 56, right: 16, top: 14, bottom: 34 };

export function drawPlot(container, xs, series) {
  container.replaceChildren();
  const toggles = document.createElement("div");
  toggles.className = "toggles";
  container.appendChild(toggles);
  const svg = svgElement("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, width: "100%", role: "img",
                                  "aria-label": series.map((s) => s.label).join(", ") + " plotted" });
  container.appendChild(svg);
  const groups = [];
  const redraw = () => render(svg, xs, series.filter((_, i) => groups[i].checked), series, groups);
  series.forEach((s, i) => {
    const label = document.createElement("label");
    label.className = `s${i}`;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.addEventListener("change", redraw);
    label.append(box, ` ${s.label}`);
    toggles.appendChild(label);
    groups.push(box);
  });
  redraw();
}

function render(svg, xs, visible, series, boxes) {
  svg.replaceChildren();
  const x = scale(Math.min(...xs), Math.max(...xs), MARGIN.left, WIDTH - MARGIN.right);
  const [low, high] = yRange(visible.flatMap((s) => s.values));
  const y = scale(low, high, HEIGHT - MARGIN.bottom, MARGIN.top);
  axes(svg, x, y);
  const clip = svgElement("clipPath", { id: "plot-area" }, svgElement("defs", {}, svg));
  svgElement("rect", { x: MARGIN.left, y: MARGIN.top, width: WIDTH - MARGIN.left - MARGIN.right,
                       height: HEIGHT - MARGIN.top - MARGIN.bottom }, clip);
  series.forEach((s, i) => {
    const group = svgElement("g", { class: `series s${i}`, "data-series": s.name, "clip-path": "url(#plot-area)" }, svg);
    if (!boxes[i].checked) group.classList.add("hidden-series");
    for (const run of finiteRuns(xs, s.values)) {
      svgElement("polyline", { class: "curve", points: run.map(([a, b]) => `${x(a)},${y(b)}`).join(" ") }, group);
    }
    xs.forEach((xValue, k) => {
      const value = s.values[k];
      const point = svgElement("circle", { class: "point", r: 1.7, "data-x": xValue, "data-y": value,
                                           cx: x(xValue), cy: Number.isFinite(value) ? y(value) : -10 }, group);
      svgElement("title", {}, point).textContent = `${s.label} at ${fmt(xValue)}: ${fmt(value)}`;
    });
  });
}

function scale(from, to, start, end) {
  const span = to - from || 1;
  const map = (v) => start + ((v - from) / span) * (end - start);
  map.domain = [from, to];
  return map;
}

// The values' range, ignoring the extreme 1% at each end (a pole would flatten the rest).
function yRange(values) {
  const finite = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!finite.length) return [-1, 1];
  const cut = finite.length > 50 ? Math.floor(finite.length * 0.01) : 0;
  let [low, high] = [finite[cut], finite[finite.length - 1 - cut]];
  if (low === high) [low, high] = [low - 1, high + 1];
  const pad = (high - low) * 0.08;
  return [low - pad, high + pad];
}

function finiteRuns(xs, values) {
  const runs = [[]];
  xs.forEach((xValue, k) => {
    if (Number.isFinite(values[k])) runs[runs.length - 1].push([xValue, values[k]]);
    else if (runs[runs.length - 1].length) runs.push([]);
  });
  return runs.filter((run) => run.length > 1);
}

function ticks([from, to], count) {
  const raw = (to - from) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const first = Math.ceil(from / step) * step;
  return Array.from({ length: Math.floor((to - first) / step) + 1 }, (_, i) => first + i * step);
}

function axes(svg, x, y) {
  const grid = svgElement("g", { class: "grid" }, svg);
  const axis = svgElement("g", { class: "axis" }, svg);
  const bottom = HEIGHT - MARGIN.bottom;
  for (const t of ticks(x.domain, 8)) {
    svgElement("line", { x1: x(t), x2: x(t), y1: MARGIN.top, y2: bottom }, grid);
    text(axis, x(t), bottom + 16, fmt(Number(t.toPrecision(12))), { "text-anchor": "middle" });
  }
  for (const t of ticks(y.domain, 6)) {
    svgElement("line", { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(t), y2: y(t) }, grid);
    text(axis, MARGIN.left - 6, y(t) + 4, fmt(Number(t.toPrecision(12))), { "text-anchor": "end" });
  }
  if (y.domain[0] < 0 && y.domain[1] > 0) {
    svgElement("line", { class: "zero", x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(0), y2: y(0) }, svg);
  }
  if (x.domain[0] < 0 && x.domain[1] > 0) {
    svgElement("line", { class: "zero", x1: x(0), x2: x(0), y1: MARGIN.top, y2: bottom }, svg);
  }
  svgElement("rect", { x: MARGIN.left, y: MARGIN.top, width: WIDTH - MARGIN.left - MARGIN.right,
                       height: bottom - MARGIN.top, fill: "none", stroke: "#8c959f" }, axis);
}
