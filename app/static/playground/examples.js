// The seed tutorials' examples, each one click away: it fills the form and runs.

const DETACH = `def f(x):
    y = x * x
    u = detach(y)
    z = u * x
    return z.sum()
`;

// Dive into Deep Learning 2.5.4: gradients through Python control flow.
const CONTROL_FLOW = `def f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    if b.sum() > 0:
        c = b
    else:
        c = 100 * b
    return c
`;

const CSC321_GRAPH = {
  inputs: ["a", "b"],
  nodes: [
    { id: "c", op: "add", args: ["a", "b"] },
    { id: "d", op: "multiply", args: ["a", "c"] },
  ],
  output: "d",
};

const TWO_PI = 6.2832;

export const EXAMPLES = [
  { id: "sin", title: "sin and its derivatives (D2L 2.5)", kind: "expression", source: "sin(x)", inputs: {},
    operation: "plot", plot: { variable: "x", from: -TWO_PI, to: TWO_PI, points: 201 } },
  { id: "sigmoid", title: "sigmoid, \u03c3\u2032 = \u03c3(1 \u2212 \u03c3)", kind: "expression",
    source: "sigmoid(x)", inputs: {}, operation: "plot", plot: { variable: "x", from: -8, to: 8, points: 201 } },
  { id: "cubic", title: "3x\u00b3 \u2212 5x\u00b2 (D2L 2.4)", kind: "expression", source: "3*x**3 - 5*x**2",
    inputs: {}, operation: "plot", plot: { variable: "x", from: -1, to: 2.5, points: 141 } },
  { id: "two-dot", title: "2\u00b7dot(x, x): grad is 4x", kind: "expression", source: "2*dot(x, x)",
    inputs: { x: [0, 1, 2, 3] }, operation: "trace" },
  { id: "csc321", title: "CSC321's graph d = a(a + b)", kind: "graph", source: JSON.stringify(CSC321_GRAPH, null, 2),
    inputs: { a: 2, b: 3 }, operation: "trace" },
  { id: "detach", title: "detach stops the gradient", kind: "program", source: DETACH, inputs: { x: [0, 1, 2, 3] },
    operation: "trace" },
  { id: "control-flow", title: "while and if (D2L 2.5.4)", kind: "program", source: CONTROL_FLOW, inputs: { a: 0.3 },
    operation: "trace" },
  { id: "backward-v", title: "y.backward(v): a vjp", kind: "expression", source: "x * x", inputs: { x: [0, 1, 2, 3] },
    operation: "vjp", options: { cotangent: "[1, 0.1, 0.01, 0.001]" } },
  { id: "softmax", title: "softmax's Jacobian", kind: "expression", source: "softmax(x)", inputs: { x: [1, 2, 3] },
    operation: "jacobian", options: { mode: "forward" } },
  { id: "quadratic-form", title: "x\u1d40Ax: Hessian A + A\u1d40", kind: "expression", source: "dot(x, matmul(A, x))",
    inputs: { x: [1, 2], A: [[2, 1], [0, 3]] }, operation: "hessian", options: { wrt: "x" } },
];
