// Small helpers shared by the plot and the graph: SVG elements and numbers as the service sends them.

const SVG = "http://www.w3.org/2000/svg";

export function svgElement(name, attributes = {}, parent = null) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (parent) parent.appendChild(element);
  return element;
}

export function text(parent, x, y, content, attributes = {}) {
  const element = svgElement("text", { x, y, ...attributes }, parent);
  element.textContent = content;
  return element;
}

const NON_FINITE = { NaN: NaN, Infinity: Infinity, "-Infinity": -Infinity };

// JSON has no NaN or infinity: the service writes them as strings.
export function number(value) {
  return typeof value === "string" && value in NON_FINITE ? NON_FINITE[value] : value;
}

export function flat(value) {
  return Array.isArray(value) ? value.flat(Infinity).map(number) : [number(value)];
}

export function shapeOf(value) {
  const shape = [];
  for (let item = value; Array.isArray(item); item = item[0]) shape.push(item.length);
  return shape;
}

export function fmt(value) {
  value = number(value);
  if (typeof value === "boolean") return String(value);
  if (!Number.isFinite(value)) return String(value);
  if (Number.isInteger(value) && Math.abs(value) < 1e6) return String(value);
  return String(Number(value.toPrecision(4)));
}

// A value in a few characters: a number, a short list, or the range of a larger array or summary.
export function brief(value) {
  if (value === null || value === undefined) return "\u2014";
  if (typeof value === "object" && !Array.isArray(value) && "entries" in value) {
    return `[${value.shape}] ${fmt(value.min)} \u2026 ${fmt(value.max)}`;
  }
  if (!Array.isArray(value)) return fmt(value);
  const numbers = flat(value);
  if (numbers.length <= 3) return `[${numbers.map(fmt).join(", ")}]`;
  const finite = numbers.filter((n) => typeof n === "boolean" || Number.isFinite(n)).map(Number);
  const range = finite.length ? `${fmt(Math.min(...finite))} \u2026 ${fmt(Math.max(...finite))}` : "";
  return `[${shapeOf(value)}] ${range}`;
}
