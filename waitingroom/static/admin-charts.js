// The console's charts: a queue's last 15 minutes (GET /admin/queues/{id}/series, a
// sample a second), small multiples drawn as inline SVG, each with its axes and its
// current value. Each poll asks only for the samples since the last one it has.
"use strict";

window.TK.queueCharts = (() => {
  const { el, count } = window.TK;
  const SVG = "http://www.w3.org/2000/svg";
  const WINDOW_MS = 15 * 60 * 1000;
  const GAP_MS = 5000; // no sample for this long (nobody counted): the line breaks there
  const HEIGHT = 100;
  const PAD = { left: 34, right: 6, top: 8, bottom: 16 };
  // The time axis spans the whole window once there are 15 minutes of samples; a younger
  // queue's samples fill a shorter span (at least a minute), not a sliver at the right.
  const SPANS = [
    [60, [[-60, "−60s"], [-30, "−30s"], [0, "now"]]],
    [120, [[-120, "−2m"], [-60, "−1m"], [0, "now"]]],
    [240, [[-240, "−4m"], [-120, "−2m"], [0, "now"]]],
    [480, [[-480, "−8m"], [-240, "−4m"], [0, "now"]]],
    [900, [[-900, "−15m"], [-600, "−10m"], [-300, "−5m"], [0, "now"]]],
  ];

  // One chart per figure; the first line is the one whose value is printed large.
  const CHARTS = [
    { key: "waiting", title: "Waiting", lines: [
      { field: "waiting" },
      { field: "pre_queue", label: "pre-queue", dashed: true, ifAny: true },
    ] },
    { key: "active", title: "Active sessions", lines: [
      { field: "active" },
      { field: "unclaimed", label: "not holding yet", dashed: true },
    ] },
    { key: "admission", title: "Admitted / min", lines: [
      { field: "measured_admit_per_minute" },
      { field: "effective_admit_per_minute", label: "in force", dashed: true },
    ] },
    { key: "held", title: "Seats held / s", decimals: true, lines: [{ field: "seats_held_per_second" }] },
    { key: "sold", title: "Seats sold / s", decimals: true, lines: [{ field: "seats_sold_per_second" }] },
    { key: "left", title: "Seats left", lines: [
      { field: "available" },
      { field: "reserved", label: "in carts", dashed: true },
    ] },
  ];

  const svg = (tag, attrs) => {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    return node;
  };

  // The axis' top: 1, 2, 4 or 5 times a power of ten, at least the largest value.
  function niceMax(value, decimals) {
    const v = Math.max(value, decimals ? 1 : 2);
    const power = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 4, 5, 10]) if (v <= m * power) return m * power;
    return 10 * power;
  }

  function short(n, decimals) {
    if (n === null || n === undefined) return "–";
    const a = Math.abs(n);
    if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
    if (a >= 1e4) return Math.round(n / 1e3) + "k";
    if (a >= 1e3) return (n / 1e3).toFixed(1) + "k";
    if (decimals && a < 10 && n !== Math.round(n)) return n.toFixed(1);
    return String(Math.round(n));
  }

  const now = (value, decimals) =>
    value === null || value === undefined ? "–" : decimals ? value.toFixed(1) : count(Math.round(value));

  function figure(chart) {
    return el(
      "figure",
      { class: "chart", dataset: { chart: chart.key } },
      el(
        "figcaption",
        {},
        el("span", { class: "chart-title" }, chart.title),
        el("strong", { class: "chart-now", dataset: { now: "" } }, "–"),
        el("small", { class: "chart-also", dataset: { also: "" } }),
      ),
      svg("svg", { class: "chart-svg", role: "img", "aria-label": chart.title + ", last 15 minutes" }),
    );
  }

  // The path of one line: moves where a value is missing or the samples have a gap.
  function path(samples, field, x, y) {
    let d = "";
    let last = null;
    for (const s of samples) {
      const v = s[field];
      if (v === null || v === undefined) {
        last = null;
        continue;
      }
      const cmd = last === null || s.at_ms - last > GAP_MS ? "M" : "L";
      d += `${cmd}${x(s.at_ms).toFixed(1)},${y(v).toFixed(1)}`;
      last = s.at_ms;
    }
    return d;
  }

  function draw(node, chart, samples) {
    const box = node.querySelector("svg");
    const width = Math.floor(box.parentNode.clientWidth);
    if (!width) return; // not laid out (hidden): drawn on the next poll
    const end = samples.length ? samples[samples.length - 1].at_ms : Date.now();
    const age = samples.length ? (end - samples[0].at_ms) / 1000 : 0;
    const [span, ticks] = SPANS.find(([seconds]) => age <= seconds) || SPANS[SPANS.length - 1];
    const lines = chart.lines.filter((l) => !l.ifAny || samples.some((s) => s[l.field] > 0));
    let top = 0;
    for (const l of lines) for (const s of samples) if (s[l.field] > top) top = s[l.field];
    top = niceMax(top, chart.decimals);
    const plotW = width - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (t) => PAD.left + ((t - end) / (span * 1000) + 1) * plotW;
    const y = (v) => PAD.top + plotH - (Math.max(0, v) / top) * plotH;

    box.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
    box.setAttribute("width", width);
    box.setAttribute("height", HEIGHT);
    const parts = [];
    for (const v of [0, top / 2, top]) {
      parts.push(svg("line", { class: "grid", x1: PAD.left, x2: width - PAD.right, y1: y(v), y2: y(v) }));
      const label = svg("text", { class: "tick", x: PAD.left - 4, y: y(v) + 3.5, "text-anchor": "end" });
      label.textContent = short(v, chart.decimals);
      parts.push(label);
    }
    for (const [seconds, text] of ticks) {
      const at = x(end + seconds * 1000);
      const anchor = seconds === -span ? "start" : seconds === 0 ? "end" : "middle";
      const label = svg("text", { class: "tick", x: at, y: HEIGHT - 3, "text-anchor": anchor });
      label.textContent = text;
      parts.push(label);
    }
    lines.forEach((l, i) => {
      parts.push(svg("path", {
        class: "line" + (l.dashed ? " dashed" : ""),
        d: path(samples, l.field, x, y),
        "data-field": l.field,
        "data-line": i,
      }));
    });
    // The latest value as a dot: a queue seconds old still shows where it stands.
    const latestDrawn = [...samples].reverse().find((s) => s[chart.lines[0].field] != null);
    if (latestDrawn) {
      const v = latestDrawn[chart.lines[0].field];
      parts.push(svg("circle", { class: "dot", cx: x(latestDrawn.at_ms), cy: y(v), r: 2.5 }));
    }
    box.replaceChildren(...parts);

    const latest = samples[samples.length - 1] || {};
    const first = chart.lines[0];
    node.querySelector("[data-now]").textContent = now(latest[first.field], chart.decimals);
    node.querySelector("[data-also]").textContent = lines
      .slice(1)
      .map((l) => `${l.label} ${now(latest[l.field], chart.decimals)}`)
      .join(" · ");
    box.setAttribute(
      "aria-label",
      `${chart.title}, last ${Math.round(span / 60)} min: now ${now(latest[first.field], chart.decimals)}, axis up to ${short(top, chart.decimals)}`,
    );
    return span;
  }

  function create(eventId, call) {
    const figures = CHARTS.map((chart) => [chart, figure(chart)]);
    const note = el("p", { class: "muted small chart-note", dataset: { f: "charts-note" } });
    const node = el(
      "section",
      { class: "charts", dataset: { f: "charts" } },
      el("h3", { dataset: { f: "charts-title" } }, "Last 15 minutes"),
      el("div", { class: "chart-grid" }, figures.map(([, f]) => f)),
      note,
    );
    let samples = [];
    let visible = true; // charts off screen are not fetched (a console may list many queues)
    let stopped = false;
    if ("IntersectionObserver" in window) {
      new IntersectionObserver((entries) => {
        visible = entries.some((e) => e.isIntersecting);
      }).observe(node);
    }

    const title = node.querySelector("h3");
    const redraw = () => {
      let span = 0;
      for (const [chart, f] of figures) span = draw(f, chart, samples) || span;
      if (span) title.textContent = span >= 120 ? `Last ${span / 60} minutes` : "Last minute";
      note.textContent = samples.length ? "" : "No samples yet: they start with the next count (a second).";
    };
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(redraw, 150);
    });

    async function update() {
      if (stopped || !visible) return;
      const last = samples.length ? samples[samples.length - 1].at_ms : 0;
      const query = last ? `?since_ms=${last}` : "";
      try {
        const body = await call("GET", `/admin/queues/${eventId}/series${query}`);
        samples = samples.concat(body.samples.filter((s) => s.at_ms > last));
        const from = (samples.length ? samples[samples.length - 1].at_ms : 0) - WINDOW_MS;
        while (samples.length && samples[0].at_ms < from) samples.shift();
      } catch (err) {
        if (err.status === 404) stopped = true;
        note.textContent = "Charts: " + err.message;
        return;
      }
      redraw();
    }

    return { node, update };
  }

  return { create };
})();
