// The computational graph of a /v1/trace answer, as SVG: nodes in layers from the inputs
// (each node one layer right of its last input), edges from each input to its reader. Each
// node carries its id, primitive, value and adjoint in data attributes, and can be selected
// with the mouse or the keyboard (Tab, then Enter).

import { brief, fmt, svgElement, text } from "./svg.js";

const NODE = { width: 176, height: 70 };
const GAP = { x: 52, y: 16 };
const PAD = 12;

export function drawGraph(container, traced, onSelect) {
  container.replaceChildren();
  const layers = layered(traced.nodes);
  const place = new Map();
  const tallest = Math.max(...layers.map((members) => members.length));
  layers.forEach((members, column) => {
    const offset = ((tallest - members.length) * (NODE.height + GAP.y)) / 2;
    members.forEach((node, row) => {
      place.set(node.id, { x: PAD + column * (NODE.width + GAP.x), y: PAD + offset + row * (NODE.height + GAP.y) });
    });
  });
  const width = PAD * 2 + layers.length * (NODE.width + GAP.x) - GAP.x;
  const height = PAD * 2 + tallest * (NODE.height + GAP.y) - GAP.y;
  const svg = svgElement("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
                                  "aria-label": `computational graph of ${traced.nodes.length} nodes` });
  const marker = svgElement("marker", { id: "arrow", viewBox: "0 0 8 8", refX: 8, refY: 4, markerWidth: 7,
                                        markerHeight: 7, orient: "auto" }, svgElement("defs", {}, svg));
  svgElement("path", { d: "M0,0 L8,4 L0,8 z", class: "arrow" }, marker);
  const edges = svgElement("g", { class: "edges" }, svg);
  for (const node of traced.nodes) {
    for (const source of new Set(node.inputs.filter((input) => typeof input === "string"))) {
      const [from, to] = [place.get(source), place.get(node.id)];
      const [x1, y1, x2, y2] = [from.x + NODE.width, from.y + NODE.height / 2, to.x, to.y + NODE.height / 2];
      const bend = Math.max(24, (x2 - x1) / 2);
      svgElement("path", { class: "edge", "marker-end": "url(#arrow)", "data-from": source, "data-to": node.id,
                           d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}` }, edges);
    }
  }
  for (const node of traced.nodes) drawNode(svg, node, place.get(node.id), node.id === traced.output, onSelect);
  container.appendChild(svg);
}

// Layers from the inputs; within a layer, nodes sorted by the mean row of their inputs, so
// that edges cross less. Nodes arrive in the order they ran, so inputs come first.
function layered(nodes) {
  const column = new Map();
  const layers = [];
  for (const node of nodes) {
    const sources = node.inputs.filter((input) => column.has(input));
    const at = sources.length ? Math.max(...sources.map((source) => column.get(source))) + 1 : 0;
    column.set(node.id, at);
    (layers[at] ??= []).push(node);
  }
  const row = new Map();
  layers.forEach((members, at) => {
    const mean = (node) => {
      const rows = node.inputs.filter((input) => row.has(input)).map((input) => row.get(input));
      return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : 0;
    };
    if (at > 0) members.sort((a, b) => mean(a) - mean(b));
    members.forEach((node, index) => row.set(node.id, index));
  });
  return layers;
}

function drawNode(svg, node, { x, y }, isOutput, onSelect) {
  const isInput = node.primitive === "input";
  const classes = ["node", isInput ? "input" : "", isOutput ? "output" : "", node.adjoint === null ? "no-adjoint" : ""];
  const group = svgElement("g", {
    class: classes.filter(Boolean).join(" "), transform: `translate(${x},${y})`, tabindex: 0, role: "button",
    "data-id": node.id, "data-primitive": node.primitive, "data-value": JSON.stringify(node.value),
    "data-adjoint": JSON.stringify(node.adjoint),
    "aria-label": `${node.id} ${node.name ?? node.primitive}: value ${brief(node.value)}, adjoint ${brief(node.adjoint)}`,
  }, svg);
  svgElement("rect", { width: NODE.width, height: NODE.height, rx: isInput ? 18 : 5 }, group);
  const operation = node.operation && node.operation !== node.primitive ? ` (${node.operation})` : "";
  const head = isInput ? `${node.id} ${node.name}` : `${node.id} ${node.primitive}${operation}`;
  const args = node.inputs.map((input) => (typeof input === "string" ? input : fmt(input))).join(", ");
  const where = isInput ? `input \u00b7 ${node.dtype}[${node.shape}]`
                        : `(${args})${node.line ? ` \u00b7 line ${node.line}` : node.location ? ` \u00b7 ${node.location}` : ""}`;
  const lines = [[head, "head"], [where, "where"], [`value ${brief(node.value)}`, "value"],
                 [`adjoint ${brief(node.adjoint)}`, "adjoint"]];
  lines.forEach(([content, kind], index) => {
    const line = text(group, 8, 16 + index * 15, clip(content, 27), { class: kind });
    if (content.length > 27) svgElement("title", {}, line).textContent = content;
  });
  const select = () => {
    svg.querySelectorAll(".node.selected").forEach((other) => other.classList.remove("selected"));
    group.classList.add("selected");
    onSelect(node);
  };
  group.addEventListener("click", select);
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      select();
    }
  });
}

function clip(content, length) {
  return content.length > length ? content.slice(0, length - 1) + "\u2026" : content;
}
