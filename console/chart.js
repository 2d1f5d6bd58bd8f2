// The overview's charts: the last hour as one bar a minute, drawn as inline SVG by
// the page itself (no chart library). Colours come from console.css.

import { h, svg } from "./dom.js";

const WIDTH = 720;
const HEIGHT = 160;
/** Room for the value axis on the left and the time axis below. */
const LEFT = 48;
const BOTTOM = 22;
const TOP = 10;

/** 1, 2 or 5 times a power of ten, at least `n` (and at least 1). */
function roundUp(n) {
  if (n <= 1) return 1;
  const power = 10 ** Math.floor(Math.log10(n));
  return [1, 2, 5, 10].map((step) => step * power).find((nice) => nice >= n);
}

function clock(rfc3339) {
  return new Date(rfc3339).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/**
 * A figure with a bar chart of `minutes` (oldest first, as GET /v1/overview gives
 * them): each minute's bar stacks the `series`, [{key, label}] bottom up; its class is
 * the key. The caption says the hour's totals, which a screen reader reads too.
 */
export function minuteChart(title, minutes, series) {
  const totals = series.map(({ key, label }) => ({
    key,
    label,
    sum: minutes.reduce((sum, minute) => sum + minute[key], 0),
  }));
  const highest = Math.max(0, ...minutes.map((m) => series.reduce((sum, { key }) => sum + m[key], 0)));
  const top = roundUp(highest);
  const plot = HEIGHT - BOTTOM - TOP;
  const y = (value) => HEIGHT - BOTTOM - (value / top) * plot;
  const slot = (WIDTH - LEFT) / Math.max(minutes.length, 1);
  const bars = minutes.map((minute, i) => {
    let base = 0;
    const parts = series.map(({ key }) => {
      const value = minute[key];
      if (!value) return null;
      const rect = svg("rect", {
        class: key,
        x: (LEFT + i * slot + slot * 0.1).toFixed(1),
        width: (slot * 0.8).toFixed(1),
        y: y(base + value).toFixed(1),
        height: (y(base) - y(base + value)).toFixed(1),
        "data-count": value,
      });
      base += value;
      return rect;
    });
    const said = series.map(({ key, label }) => `${minute[key]} ${label}`).join(", ");
    return svg("g", {}, svg("title", {}, `${clock(minute.start)}: ${said}`), parts);
  });
  const last = minutes.length - 1;
  const timeLabel = (i, text, anchor) =>
    svg("text", { x: LEFT + (i + 0.5) * slot, y: HEIGHT - 6, "text-anchor": anchor }, text);
  const summary = totals.map(({ sum, label }) => `${sum} ${label}`).join(", ");
  return h(
    "figure",
    { class: "chart" },
    h(
      "figcaption",
      {},
      h("strong", {}, title),
      " ",
      totals.map(({ key, label, sum }) =>
        h("span", { class: `legend ${key}` }, h("span", { class: "swatch", "aria-hidden": "true" }), `${sum} ${label}`),
      ),
      " in the last hour",
    ),
    svg(
      "svg",
      {
        viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
        role: "img",
        "aria-label": `${title}, per minute over the last hour: ${summary}`,
      },
      svg("line", { class: "axis", x1: LEFT, x2: WIDTH, y1: y(0), y2: y(0) }),
      svg("line", { class: "grid", x1: LEFT, x2: WIDTH, y1: y(top), y2: y(top) }),
      svg("text", { x: LEFT - 6, y: y(top) + 4, "text-anchor": "end" }, top),
      svg("text", { x: LEFT - 6, y: y(0) + 4, "text-anchor": "end" }, 0),
      // A clock time every quarter of an hour, and "now" under the current minute.
      minutes.map((minute, i) => (i % 15 === 0 ? timeLabel(i, clock(minute.start), i ? "middle" : "start") : null)),
      minutes.length ? timeLabel(last, "now", "end") : null,
      bars,
    ),
  );
}
