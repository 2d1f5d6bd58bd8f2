// Building the page without innerHTML: every value from the gateway is text.

/** An element: h("a", {href: "#/x"}, "text", child, …). Attributes starting with
 * "on" are listeners; null/false children are skipped. */
export function h(tag, attributes = {}, ...children) {
  return fill(document.createElement(tag), attributes, children);
}

/** An SVG element, built as h() builds an HTML one: svg("rect", {x: 0, …}). */
export function svg(tag, attributes = {}, ...children) {
  return fill(document.createElementNS("http://www.w3.org/2000/svg", tag), attributes, children);
}

function fill(element, attributes, children) {
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A table with a caption, column headers and rows of cells. */
export function table(caption, columns, rows) {
  return h(
    "table",
    {},
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, rows),
  );
}

/** A definition list from [term, value] pairs. */
export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value ?? "—")]),
  );
}

/** A labelled form field. */
export function field(label, control, hint) {
  const id = control.id || `f-${Math.random().toString(36).slice(2)}`;
  control.id = id;
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    control,
    hint ? h("small", {}, hint) : null,
  );
}

/** "3 s ago" / "in 4 s" beside an RFC 3339 time, with the time itself as a tooltip. */
export function when(rfc3339) {
  if (!rfc3339) return "—";
  const ms = Date.parse(rfc3339) - Date.now();
  const abs = Math.abs(ms);
  const span =
    abs < 1000 ? `${abs} ms` : abs < 120000 ? `${Math.round(abs / 1000)} s` : abs < 7200000
      ? `${Math.round(abs / 60000)} min` : `${Math.round(abs / 3600000)} h`;
  return h("time", { datetime: rfc3339, title: rfc3339 }, ms >= 0 ? `in ${span}` : `${span} ago`);
}

/** A failure {reason, detail, status?} as text. */
export function failure(error) {
  if (!error) return "—";
  return h("span", { class: "error-text" }, `${error.reason}: ${error.detail}`);
}
