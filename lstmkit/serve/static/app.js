// lstmkit web page: calls v1/predict and v1/inspect on this server, relative to the page (it works
// at / under lstmkit serve and under /models/<run>/ in lstmkit studio; no external resources).
"use strict";

const state = { needsToken: false, maxTokens: 200 };
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = state.needsToken ? $("token").value.trim() : "";
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (err) {
    payload = null;
  }
  if (!response.ok) {
    if (response.status === 401) showAuth();
    let detail = payload && payload.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => d.msg).join("; ");
    const error = new Error(detail || response.status + " " + response.statusText);
    error.status = response.status;
    throw error;
  }
  return payload;
}

function showAuth() {
  state.needsToken = true;
  $("auth").hidden = false;
}

function showError(message) {
  const el = $("error");
  el.textContent = message || "";
  el.hidden = !message;
}

async function loadModel() {
  try {
    const info = await api("GET", "v1/model");
    const name = info.name ? info.name + ": " : "";
    $("model-info").textContent =
      name + info.model.cell.toUpperCase() + " model, labels " + info.labels.join(", ");
  } catch (err) {
    $("model-info").textContent =
      err.status === 401 ? "Enter the server's token to use the model." : String(err.message);
  }
}

function renderPrediction(pred) {
  $("label").textContent = pred.label;
  const bars = $("bars");
  bars.replaceChildren();
  const entries = Object.entries(pred.scores).sort((a, b) => b[1] - a[1]);
  for (const [label, p] of entries) {
    const row = document.createElement("div");
    row.className = "bar-row" + (label === pred.label ? " top" : "");
    const name = document.createElement("span");
    name.textContent = label;
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (100 * p).toFixed(1) + "%";
    bar.appendChild(fill);
    const value = document.createElement("span");
    value.textContent = (100 * p).toFixed(1) + " %";
    row.append(name, bar, value);
    bars.appendChild(row);
  }
  $("result").hidden = false;
}

// red: supports the predicted label, blue: speaks against it
function contributionColor(value, bound) {
  const a = Math.min(Math.abs(value) / (bound || 1), 1);
  return value >= 0 ? `rgba(220, 38, 38, ${a.toFixed(3)})` : `rgba(37, 99, 235, ${a.toFixed(3)})`;
}

// 0 -> dark blue, 1 -> yellow (a viridis-like ramp)
function gateColor(v) {
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const x = Math.max(0, Math.min(1, v)) * (stops.length - 1);
  const i = Math.min(Math.floor(x), stops.length - 2);
  const t = x - i;
  const c = stops[i].map((s, k) => Math.round(s + t * (stops[i + 1][k] - s)));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

function renderWords(result, n) {
  const words = $("words");
  words.replaceChildren();
  const contrib = result.contributions.slice(0, n);
  const bound = Math.max(1e-9, ...contrib.map(Math.abs));
  for (let t = 0; t < n; t++) {
    const span = document.createElement("span");
    span.textContent = result.words[t];
    span.style.background = contributionColor(contrib[t], bound);
    span.title = `${result.tokens[t]}: ${contrib[t] >= 0 ? "+" : ""}${contrib[t].toFixed(4)}`;
    words.appendChild(span);
    words.appendChild(document.createTextNode(" "));
  }
}

function heatmapRows(result, n) {
  const rows = [];
  const contrib = result.contributions.slice(0, n);
  const bound = Math.max(1e-9, ...contrib.map(Math.abs));
  rows.push({
    name: "contribution",
    values: contrib,
    color: (v) => contributionColor(v, bound),
  });
  const bidir = result.layers.some((l) => l.direction === "backward");
  for (const layer of result.layers) {
    const tag = "L" + layer.layer + (bidir ? (layer.direction === "backward" ? " bwd" : " fwd") : "");
    for (const [gate, values] of Object.entries(layer.gates)) {
      rows.push({ name: tag + " " + gate, values: values.slice(0, n), color: gateColor });
    }
    const norm = layer.cell_norm || layer.hidden_norm;
    const top = Math.max(1e-12, ...norm.slice(0, n));
    rows.push({
      name: tag + (layer.cell_norm ? " |c|" : " |h|"),
      values: norm.slice(0, n),
      color: (v) => gateColor(v / top),
    });
  }
  return rows;
}

function renderHeatmap(result, n) {
  const table = $("heatmap");
  table.replaceChildren();
  const head = document.createElement("thead");
  const headRow = document.createElement("tr");
  headRow.appendChild(document.createElement("th"));
  for (let t = 0; t < n; t++) {
    const th = document.createElement("th");
    th.textContent = result.words[t];
    headRow.appendChild(th);
  }
  head.appendChild(headRow);
  const body = document.createElement("tbody");
  for (const row of heatmapRows(result, n)) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.textContent = row.name;
    tr.appendChild(th);
    row.values.forEach((v, t) => {
      const td = document.createElement("td");
      td.style.background = row.color(v);
      td.title = `${row.name} at "${result.words[t]}": ${v.toFixed(4)}`;
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  table.append(head, body);
}

function renderInspection(result) {
  const n = Math.min(result.tokens.length, state.maxTokens);
  $("method").textContent =
    "Occlusion: how much the probability of \u201c" + result.label +
    "\u201d drops when a word is replaced by the unknown-word token (red: for, blue: against)." +
    (n < result.tokens.length ? ` First ${n} of ${result.tokens.length} tokens.` : "");
  renderWords(result, n);
  renderHeatmap(result, n);
  $("inspect").hidden = false;
}

async function run(event) {
  if (event) event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) {
    showError("Type some text first.");
    return;
  }
  showError("");
  $("predict").disabled = true;
  try {
    const [pred, inspection] = await Promise.all([
      api("POST", "v1/predict", { texts: [text] }),
      api("POST", "v1/inspect", { text }),
    ]);
    renderPrediction(pred.predictions[0]);
    renderInspection(inspection);
    if (state.needsToken) loadModel();
  } catch (err) {
    showError(err.message);
  } finally {
    $("predict").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", run);
  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => {
      $("text").value = button.dataset.text;
      run();
    });
  }
  loadModel();
});
