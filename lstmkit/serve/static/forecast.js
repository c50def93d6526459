// lstmkit forecast page: sends the pasted or uploaded CSV to v1/forecast on this server (relative
// to the page: it works at / and under /models/<name>/), draws each series' history and its
// forecast band, and shows the numbers as a table on request. No external resources.
"use strict";

const state = { needsToken: false, info: null, busy: false };
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

function headers(contentType) {
  const h = { "Content-Type": contentType };
  const token = state.needsToken ? $("token").value.trim() : "";
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body, contentType) {
  const response = await fetch(path, { method, headers: headers(contentType || "application/json"), body });
  let payload = null;
  try {
    payload = await response.json();
  } catch (err) {
    payload = null;
  }
  if (!response.ok) {
    if (response.status === 401) {
      state.needsToken = true;
      $("auth").hidden = false;
    }
    let detail = payload && payload.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    const error = new Error(detail || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
  $("csv").setAttribute("aria-invalid", message ? "true" : "false");
}

function columnsOf(info) {
  const cols = [];
  if (info.id_column) cols.push(info.id_column);
  if (info.time_column) cols.push(info.time_column);
  return cols.concat([info.target], info.features);
}

async function loadModel() {
  try {
    const info = await api("GET", "v1/model");
    state.info = info;
    const kind = info.panel ? "many series (one row per id and time)" : "one series";
    $("model-info").textContent = (info.name ? info.name + ": " : "") + "forecasts " + info.target +
      " of " + kind + ", " + info.horizon + " steps ahead from the last " + info.lookback + " rows" +
      (info.frequency ? " (" + info.frequency + ")" : "");
    $("columns-help").textContent = "Columns: " + columnsOf(info).join(", ") + ". At least " +
      info.lookback + " consecutive rows" + (info.panel ? " per series; several ids at once." : ".");
    if (!$("csv").value) $("csv").value = columnsOf(info).join(",") + "\n";
  } catch (err) {
    $("model-info").textContent = err.status === 401 ? "Enter the server's token to use the model." : String(err.message);
  }
}

// the history as the page draws it: per id, the target's values and times (the server reads it)
function parseHistory(text, info) {
  const lines = text.split(/\r?\n/).filter((l) => l.trim());
  const head = lines[0].split(",").map((s) => s.trim());
  const at = (name) => head.indexOf(name);
  const series = new Map();
  for (const line of lines.slice(1)) {
    const cells = line.split(",");
    const id = info.id_column ? cells[at(info.id_column)].trim() : "";
    if (!series.has(id)) series.set(id, { values: [], times: [] });
    const s = series.get(id);
    s.values.push(Number(cells[at(info.target)]));
    s.times.push(info.time_column ? cells[at(info.time_column)].trim() : String(s.values.length));
  }
  return series;
}

const fmt = (v) => (Math.abs(v) >= 1000 ? v.toFixed(0) : v.toPrecision(4));

// -- the y axis's ticks: nice steps (1, 2, 2.5, 5 x 10^k); their labels: tickLabels of
// ticks.js (one file for these pages and the studio's charts)
function niceTicks(min, max, count) {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = power * ([1, 2, 2.5, 5, 10].find((m) => m * power >= raw) || 10);
  const ticks = [];
  for (let k = Math.ceil(min / step); k * step <= max + step * 1e-9; k++) ticks.push(Number((k * step).toPrecision(12)));
  return ticks;
}

// a label's width in the chart's units (12px text in a viewBox as wide as the chart)
function textWidth(text) {
  const ctx = (textWidth.canvas || (textWidth.canvas = document.createElement("canvas"))).getContext("2d");
  ctx.font = "12px " + getComputedStyle(document.body).fontFamily;
  return ctx.measureText(text).width;
}

function chart(id, history, steps, quantiles) {
  const lo = String(quantiles[0]), hi = String(quantiles[quantiles.length - 1]);
  const shown = history.values.slice(-Math.max(3 * steps.length, 24));
  const times = history.times.slice(-shown.length);
  const all = shown.concat(steps.map((s) => s.quantiles[lo]), steps.map((s) => s.quantiles[hi]));
  const lowest = Math.min(...all), highest = Math.max(...all);
  const pad = (highest - lowest) * 0.05 || Math.abs(highest) * 0.05 || 1;
  const min = lowest - pad, max = highest + pad;
  const ticks = niceTicks(min, max, 4);
  const labels = tickLabels(ticks);
  // the left margin holds the widest label: none is cut at the chart's edge
  const W = 640, H = 240, R = 12, T = 12, B = 28;
  const L = Math.ceil(Math.max(...labels.map(textWidth)) + 12);
  const n = shown.length + steps.length;
  const x = (i) => L + ((W - L - R) * i) / Math.max(n - 1, 1);
  const y = (v) => T + (H - T - B) * (1 - (v - min) / (max - min || 1));
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 " + W + " " + H);
  svg.setAttribute("role", "img");
  const last = shown.length - 1;
  const first = steps[0], end = steps[steps.length - 1];
  svg.setAttribute("aria-label", (id ? "Series " + id + ": " : "") + "history of " + shown.length +
    " rows ending " + times[last] + " at " + fmt(shown[last]) + "; forecast " +
    (first.time || "step 1") + " to " + (end.time || "step " + end.step) + ": median " +
    fmt(first.forecast) + " to " + fmt(end.forecast) + ", band " + lo + " to " + hi + " from " +
    fmt(Math.min(...steps.map((s) => s.quantiles[lo]))) + " to " +
    fmt(Math.max(...steps.map((s) => s.quantiles[hi]))));
  const add = (name, attrs) => {
    const el = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    svg.appendChild(el);
    return el;
  };
  const band = steps.map((s, k) => x(last + 1 + k) + "," + y(s.quantiles[lo]))
    .concat(steps.map((s, k) => x(last + 1 + k) + "," + y(s.quantiles[hi])).reverse());
  band.unshift(x(last) + "," + y(shown[last]));
  add("polygon", { class: "band", points: band.join(" ") });
  add("polyline", { class: "history", points: shown.map((v, i) => x(i) + "," + y(v)).join(" ") });
  const median = [x(last) + "," + y(shown[last])].concat(steps.map((s, k) => x(last + 1 + k) + "," + y(s.forecast)));
  add("polyline", { class: "median", points: median.join(" ") });
  add("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B });
  add("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B });
  ticks.forEach((v, k) => {
    svg.prepend(add("line", { class: "grid", x1: L, y1: y(v), x2: W - R, y2: y(v) })); // under the data
    add("line", { class: "axis", x1: L - 4, y1: y(v), x2: L, y2: y(v) });
    add("text", { class: "tick", "data-axis": "y", x: L - 6, y: y(v), "text-anchor": "end", "dominant-baseline": "middle" }).textContent = labels[k];
  });
  add("text", { class: "tick", "data-axis": "x", x: L, y: H - 8 }).textContent = times[0];
  add("text", { class: "tick", "data-axis": "x", x: W - R, y: H - 8, "text-anchor": "end" }).textContent = end.time || "step " + end.step;
  const box = document.createElement("div");
  box.className = "chart";
  if (id) {
    const h = document.createElement("h3");
    h.textContent = "Series " + id;
    box.appendChild(h);
  }
  box.appendChild(svg);
  return box;
}

function table(result, panel) {
  const t = $("table");
  t.replaceChildren();
  const cap = document.createElement("caption");
  cap.textContent = "Forecast of " + result.target + " per step";
  t.appendChild(cap);
  const cols = (panel ? ["id"] : []).concat(["step", "time", "forecast"], result.quantiles.map((q) => "q" + q));
  const head = t.createTHead().insertRow();
  for (const c of cols) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = c;
    head.appendChild(th);
  }
  const body = t.createTBody();
  for (const s of result.forecasts) {
    const row = body.insertRow();
    const cells = (panel ? [s.id] : []).concat([s.step, s.time || "", fmt(s.forecast)], result.quantiles.map((q) => fmt(s.quantiles[String(q)])));
    for (const c of cells) row.insertCell().textContent = c;
  }
}

async function forecast(event) {
  event.preventDefault();
  if (state.busy) return;
  const text = $("csv").value;
  if (text.trim().split(/\r?\n/).length < 2) {
    showError("Paste the history: a header row and at least " + (state.info ? state.info.lookback : "a few") + " rows.");
    $("csv").focus();
    return;
  }
  state.busy = true;
  $("go").setAttribute("aria-disabled", "true");
  $("announce").textContent = "Forecasting\u2026";
  try {
    const result = await api("POST", "v1/forecast", text, "text/csv");
    showError("");
    const info = state.info;
    const history = parseHistory(text, info);
    const charts = $("charts");
    charts.replaceChildren();
    const byId = new Map();
    for (const s of result.forecasts) {
      const key = s.id || "";
      if (!byId.has(key)) byId.set(key, []);
      byId.get(key).push(s);
    }
    for (const [id, steps] of byId) charts.appendChild(chart(id, history.get(id), steps, result.quantiles));
    $("band-label").textContent = result.quantiles[0] + " to " + result.quantiles[result.quantiles.length - 1] + " quantiles";
    table(result, info.panel);
    $("result").hidden = false;
    $("announce").textContent = "Forecast ready: " + result.horizon + " steps for " + byId.size + (byId.size === 1 ? " series." : " series each.");
    $("result-title").focus();
  } catch (err) {
    showError(String(err.message));
    $("announce").textContent = "";
    $("csv").focus();
  } finally {
    state.busy = false;
    $("go").removeAttribute("aria-disabled");
  }
}

$("form").addEventListener("submit", forecast);
$("file").addEventListener("change", async () => {
  const file = $("file").files[0];
  if (file) $("csv").value = await file.text();
});
$("show-table").addEventListener("click", () => {
  const shown = $("table-box").hidden;
  $("table-box").hidden = !shown;
  $("show-table").setAttribute("aria-pressed", String(shown));
  $("show-table").textContent = shown ? "Hide the table" : "Show as table";
});
$("token").addEventListener("change", loadModel);
loadModel();
