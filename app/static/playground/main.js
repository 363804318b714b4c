// The playground: a form for a function and its inputs, one request per Run, and the answer
// drawn (a plot, a graph) and shown as JSON. A problem is shown beside the source with its
// location marked.

import { EXAMPLES } from "./examples.js";
import { drawGraph } from "./graph.js";
import { drawPlot } from "./plot.js";
import { flat, shapeOf } from "./svg.js";

const $ = (id) => document.getElementById(id);
const OPTION_FIELDS = ["reduce", "wrt", "mode", "cotangent", "tangents"];

// A problem found here, before any request, told as the service tells its own.
class Problem extends Error {
  constructor(problem) {
    super(problem.detail);
    this.problem = problem;
  }
}

function kind() {
  return document.querySelector('input[name="kind"]:checked').value;
}

function parseJSON(text, what, location) {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Problem({ title: `${what} is not JSON`, detail: error.message, location });
  }
}

function functionSpec() {
  const source = $("source").value;
  return { [kind()]: kind() === "graph" ? parseJSON(source, "The graph", "/function/graph") : source };
}

function inputs() {
  const text = $("inputs").value.trim();
  const parsed = text ? parseJSON(text, "The inputs", "/inputs") : {};
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Problem({ title: "Inputs", detail: 'inputs are a JSON object: {"x": [0, 1, 2]}', location: "/inputs" });
  }
  return parsed;
}

function options(operation) {
  const chosen = {};
  for (const name of OPTION_FIELDS) {
    const field = $(name).closest(".opt");
    const value = $(name).value.trim();
    if (!field.dataset.for.split(" ").includes(operation) || !value) continue;
    if (name === "wrt") chosen.wrt = value.split(",").map((item) => item.trim());
    else if (name === "cotangent" || name === "tangents") chosen[name] = parseJSON(value, `The ${name}`, `/${name}`);
    else chosen[name] = value;
  }
  return chosen;
}

async function post(path, body) {
  const headers = { "Content-Type": "application/json" };
  if ($("api-key").value) headers["X-API-Key"] = $("api-key").value;
  const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Problem(answer?.type ? answer : { title: `HTTP ${response.status}`, detail: response.statusText });
  }
  return answer;
}

async function plot() {
  const variable = $("variable").value.trim();
  const [from, to, count] = [Number($("from").value), Number($("to").value), Math.round(Number($("points").value))];
  if (!(count >= 2 && Number.isFinite(from) && Number.isFinite(to) && from < to)) {
    throw new Problem({ title: "Range", detail: "give from < to and at least 2 points" });
  }
  const grid = Array.from({ length: count }, (_, i) => from + ((to - from) * i) / (count - 1));
  const body = { function: functionSpec(), inputs: { ...inputs(), [variable]: grid },
                 tangents: { [variable]: grid.map(() => 1) }, wrt: [variable], reduce: "sum" };
  const answer = await post("/v1/hvp", body);
  const shape = shapeOf(answer.value);
  if (shape.length !== 1 || shape[0] !== count) {
    throw new Problem({
      title: "Not a function of one variable",
      detail: `a plot needs one value of f per point of ${variable} (a function applied elementwise); ` +
              `this output has shape [${shape}]`,
    });
  }
  $("plot-panel").hidden = false;
  drawPlot($("plot"), grid, [
    { name: "f", label: "f", values: flat(answer.value) },
    { name: "f'", label: "f\u2032", values: flat(answer.gradient[variable]) },
    { name: "f''", label: "f\u2033", values: flat(answer.hvp[variable]) },
  ]);
  return answer;
}

async function trace() {
  const answer = await post("/v1/trace", { function: functionSpec(), inputs: inputs(), ...options("trace") });
  $("graph-panel").hidden = false;
  $("dot-panel").hidden = false;
  $("dot").textContent = answer.dot;
  drawGraph($("graph"), answer, (node) => {
    $("node-detail").hidden = false;
    $("node-detail").textContent = JSON.stringify(node, null, 1);
    showLocation(node.location, "note");
  });
  return answer;
}

async function run() {
  const operation = $("operation").value;
  clearProblem();
  for (const panel of ["plot-panel", "graph-panel", "dot-panel", "node-detail"]) $(panel).hidden = true;
  $("status").textContent = "running\u2026";
  const started = performance.now();
  try {
    const answer = operation === "plot" ? await plot()
      : operation === "trace" ? await trace()
      : await post(`/v1/${operation}`, { function: functionSpec(), inputs: inputs(), ...options(operation) });
    $("result").textContent = JSON.stringify(answer, (key, value) => (key === "dot" ? undefined : value), 1);
    $("status").textContent = `done in ${Math.round(performance.now() - started)} ms`;
  } catch (error) {
    if (!(error instanceof Problem)) throw error;
    showProblem(error.problem);
    $("status").textContent = "";
  }
}

// ---- problems, and where they are ----

function clearProblem() {
  $("problem").hidden = true;
  $("source-view").hidden = true;
}

function showProblem(problem) {
  $("problem").hidden = false;
  $("problem-title").textContent = problem.title ?? "Problem";
  $("problem-type").textContent = problem.type ? problem.type.replace("https://gradserve.dev/problems/", "") : "";
  $("problem-detail").textContent = problem.detail ?? "";
  $("problem-where").textContent = problem.location ? `at ${problem.location}` : "";
  $("result").textContent = JSON.stringify(problem, null, 1);
  showLocation(problem.location, "problem");
}

// The place a location names, as {field, start, end} in the source's or the inputs' text:
// "offset 12", "line 3, column 5" (1-based), "node 'c'" (a graph node's id), "/inputs/x".
function locate(location) {
  const source = $("source").value;
  let match;
  if ((match = /^offset (\d+)$/.exec(location))) return span("source", source, Number(match[1]));
  if ((match = /^line (\d+), column (\d+)$/.exec(location))) {
    const starts = [0, ...[...source.matchAll(/\r\n|\r|\n/g)].map((m) => m.index + m[0].length)];
    const line = Math.min(Number(match[1]), starts.length);
    return span("source", source, starts[line - 1] + Number(match[2]) - 1);
  }
  if ((match = /^node '(.*)'$/.exec(location)) && kind() === "graph") {
    const id = new RegExp(`"id"\\s*:\\s*${escapeRegExp(JSON.stringify(match[1]))}`).exec(source);
    return id ? { field: "source", start: id.index, end: id.index + id[0].length } : null;
  }
  if ((match = /^\/inputs\/([^/]+)/.exec(location))) {
    const text = $("inputs").value;
    const key = JSON.stringify(match[1].replaceAll("~1", "/").replaceAll("~0", "~"));
    const at = text.indexOf(key);
    return at >= 0 ? { field: "inputs", start: at, end: at + key.length } : null;
  }
  return null;
}

function span(field, text, start) {
  start = Math.max(0, Math.min(start, text.length));
  let end = start;
  while (end < text.length && /[\w.]/.test(text[end])) end += 1;
  return { field, start, end: Math.max(end, Math.min(start + 1, text.length)) };
}

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The text of the source (or of the inputs) beside the form, with a place marked: a problem's
// location (the field's text is selected too, to be fixed), or a selected node's ("note").
function showLocation(location, style) {
  const view = $("source-view");
  view.replaceChildren();
  const place = location ? locate(location) : null;
  view.hidden = !place;
  if (!place) return;
  const field = $(place.field);
  const text = field.value;
  const mark = document.createElement("mark");
  mark.id = "location-mark";
  mark.className = ["location", style, place.start >= text.length ? "end" : ""].join(" ");
  Object.assign(mark.dataset, { start: place.start, end: place.end, field: place.field, location });
  mark.textContent = text.slice(place.start, place.end);
  view.append(text.slice(0, place.start), mark, text.slice(place.end));
  view.scrollTop = Math.max(0, mark.offsetTop - view.offsetTop - view.clientHeight / 2);
  if (style === "problem") {
    field.focus();
    field.setSelectionRange(place.start, place.end);
  }
}

// ---- the form ----

function showOptionsOf(operation) {
  for (const element of document.querySelectorAll(".opt")) {
    element.hidden = !element.dataset.for.split(" ").includes(operation);
  }
}

const DEFAULTS = { reduce: "none", mode: "auto" };

function load(example) {
  document.querySelector(`input[name="kind"][value="${example.kind}"]`).checked = true;
  $("source").value = example.source;
  $("inputs").value = JSON.stringify(example.inputs);
  $("operation").value = example.operation;
  for (const name of OPTION_FIELDS) $(name).value = example.options?.[name] ?? DEFAULTS[name] ?? "";
  for (const [name, value] of Object.entries(example.plot ?? {})) $(name).value = value;
  showOptionsOf(example.operation);
}

// Enter keeps the line's indentation (and adds a level after a colon), for programs.
function indentOnEnter(event) {
  if (event.key !== "Enter" || event.ctrlKey || event.metaKey || kind() !== "program") return;
  const area = event.target;
  const before = area.value.slice(0, area.selectionStart);
  const line = before.slice(before.lastIndexOf("\n") + 1);
  const indent = line.match(/^\s*/)[0] + (line.trimEnd().endsWith(":") ? "    " : "");
  event.preventDefault();
  area.setRangeText(`\n${indent}`, area.selectionStart, area.selectionEnd, "end");
}

function start() {
  for (const example of EXAMPLES) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = example.title;
    button.dataset.example = example.id;
    button.addEventListener("click", () => {
      load(example);
      run();
    });
    $("examples").appendChild(button);
  }
  $("operation").addEventListener("change", () => showOptionsOf($("operation").value));
  $("form").addEventListener("submit", (event) => {
    event.preventDefault();
    run();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      run();
    }
  });
  $("source").addEventListener("keydown", indentOnEnter);
  load(EXAMPLES[0]);
  document.body.dataset.ready = "true";
}

start();
