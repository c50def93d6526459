// lstmkit web page: calls v1/predict and v1/inspect on this server, relative to the page (it works
// at / under lstmkit serve and under /models/<run>/ in lstmkit studio; no external resources).
"use strict";

const state = { needsToken: false, maxTokens: 200, maxlen: null, maxTexts: 64, maxChars: 20000, busy: false, inspection: null };
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
  $("text").setAttribute("aria-invalid", message ? "true" : "false");
}

const CELLS = { lstm: "LSTM", gru: "GRU", rnn: "simple RNN" };

// the architecture in words, from /v1/model's ClassifierConfig (not just "LSTM model")
function describeModel(m) {
  const parts = [];
  if (m.vocab_size) parts.push("embedding " + m.embedding_dim);
  if (m.conv_filters) parts.push("Conv1D (" + m.conv_filters + " filters, width " + m.conv_kernel + ") + max-pool " + m.pool_size);
  const sizes = m.layer_sizes && m.layer_sizes.length ? m.layer_sizes : Array(m.num_layers || 1).fill(m.hidden_size);
  const cell = CELLS[m.cell] || String(m.cell).toUpperCase();
  parts.push((m.bidirectional ? "bidirectional " : "") + (sizes.length > 1 ? sizes.length + "-layer " : "") + cell + " (" + sizes.join(", ") + " units)");
  if (m.pooling && m.pooling !== "last") parts.push(m.pooling + " pooling");
  if (m.dense_sizes && m.dense_sizes.length) parts.push("dense " + m.dense_sizes.join(", "));
  let text = parts.join(" \u2192 ");
  if (m.ngrams) text += ", with a 1..." + m.ngrams + "-gram branch";
  return text;
}

// under lstmkit studio (/models/<run id>/): the run's own name and a way back to the studio
async function loadStudioRun() {
  const match = location.pathname.match(/\/models\/([0-9a-f]{8})\/$/);
  if (!match) return null;
  try {
    const run = await api("GET", "../../api/runs/" + match[1]);
    $("studio-link").href = "../../#/run/" + match[1];
    $("studio-link").textContent = "Back to the studio (run \u201c" + run.name + "\u201d)";
    $("studio-nav").hidden = false;
    return run;
  } catch (err) {
    return null; // not a studio after all, or its token is not given yet
  }
}

async function loadModel() {
  try {
    const [info, run] = await Promise.all([api("GET", "v1/model"), loadStudioRun()]);
    state.maxlen = info.maxlen;
    state.maxTexts = info.max_texts;
    state.maxChars = info.max_chars;
    const name = run ? "Run \u201c" + run.name + "\u201d (recipe " + (info.name || run.recipe) + ")" : info.name;
    $("model-info").textContent = (name ? name + ": " : "") + describeModel(info.model) + "; labels " + info.labels.join(", ");
    if (run) {
      $("page-title").textContent = "lstmkit: " + run.name;
      document.title = run.name + ": lstmkit";
    }
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
    bar.setAttribute("aria-hidden", "true"); // the number beside it says the same
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

// -- colours: what they mean is in the legends; the text on them keeps 4.5:1 -------------------
function rgbOf(color) {
  const m = color.match(/[\d.]+/g).map(Number);
  const a = m.length > 3 ? m[3] : 1; // over the white card
  return [0, 1, 2].map((k) => Math.round(255 + a * (m[k] - 255)));
}

function luminance(rgb) {
  const lin = rgb.map((c) => {
    const s = c / 255;
    return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2];
}

// black or white, whichever stands out more (either reaches at least 4.58:1 on any colour)
function textOn(color) {
  const l = luminance(rgbOf(color));
  return (l + 0.05) / 0.05 >= 1.05 / (l + 0.05) ? "#000" : "#fff";
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

// a contribution with its sign and ``digits`` significant digits (they can be tiny: 0.0012)
function signed(v, digits) {
  if (v === 0) return "0";
  return (v > 0 ? "+" : "\u2212") + String(Number(Math.abs(v).toPrecision(digits)));
}

function renderWords(result, n) {
  const words = $("words");
  words.replaceChildren();
  const contrib = result.contributions.slice(0, n);
  const bound = Math.max(1e-9, ...contrib.map(Math.abs));
  for (let t = 0; t < n; t++) {
    const span = document.createElement("span");
    span.className = "word";
    const color = contributionColor(contrib[t], bound);
    span.style.background = color;
    span.style.color = textOn(color);
    span.title = `${result.tokens[t]}: ${signed(contrib[t], 3)}`;
    const word = document.createElement("span");
    word.textContent = result.words[t];
    // the value is text: a screen reader reads it; "Show the numbers" shows it on screen too
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = " " + signed(contrib[t], 2);
    span.append(word, value);
    words.appendChild(span);
    words.appendChild(document.createTextNode(" "));
  }
}

function heatmapRows(result, n) {
  const rows = [];
  const contrib = result.contributions.slice(0, n);
  const bound = Math.max(1e-9, ...contrib.map(Math.abs));
  rows.push({ name: "contribution", values: contrib, color: (v) => contributionColor(v, bound), digits: 3 });
  const bidir = result.layers.some((l) => l.direction === "backward");
  for (const layer of result.layers) {
    const tag = "L" + layer.layer + (bidir ? (layer.direction === "backward" ? " bwd" : " fwd") : "");
    for (const [gate, values] of Object.entries(layer.gates)) {
      rows.push({ name: tag + " " + gate, values: values.slice(0, n), color: gateColor, digits: 2 });
    }
    const norm = layer.cell_norm || layer.hidden_norm;
    const top = Math.max(1e-12, ...norm.slice(0, n));
    rows.push({
      name: tag + (layer.cell_norm ? " |c|" : " |h|"),
      values: norm.slice(0, n),
      color: (v) => gateColor(v / top),
      digits: 2,
    });
  }
  return rows;
}

function renderHeatmap(result, n) {
  const table = $("heatmap");
  table.replaceChildren();
  const caption = table.createCaption();
  caption.className = "visually-hidden";
  caption.textContent = "Rows: the contribution, each gate and the state norm; columns: the words.";
  const head = document.createElement("thead");
  const headRow = document.createElement("tr");
  const corner = document.createElement("th");
  corner.scope = "col";
  corner.className = "corner";
  corner.textContent = "word";
  headRow.appendChild(corner);
  for (let t = 0; t < n; t++) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = result.words[t];
    headRow.appendChild(th);
  }
  head.appendChild(headRow);
  const body = document.createElement("tbody");
  for (const row of heatmapRows(result, n)) {
    const tr = document.createElement("tr");
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = row.name;
    tr.appendChild(th);
    row.values.forEach((v, t) => {
      const td = document.createElement("td");
      const color = row.color(v);
      td.style.background = color;
      td.style.color = textOn(color);
      td.title = `${row.name} at "${result.words[t]}": ${v.toFixed(4)}`;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = row.digits === 3 ? signed(v, 2) : v.toFixed(2);
      td.appendChild(value);
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  table.append(head, body);
}

// -- each unit's gate per token (units x tokens, from v1/inspect's layers[i].units) ----------
const mean = (xs) => xs.reduce((a, b) => a + b, 0) / (xs.length || 1);
const variance = (xs) => {
  const m = mean(xs);
  return mean(xs.map((x) => (x - m) * (x - m)));
};

// the units' order: by variance over the shown tokens or by mean (largest first), or by number
function unitOrder(rows, by) {
  const order = rows.map((_, u) => u);
  if (by === "unit") return order;
  const key = rows.map(by === "mean" ? mean : variance);
  return order.sort((a, b) => key[b] - key[a] || a - b);
}

function layerName(layer, bidir) {
  return "layer " + layer.layer + (bidir ? " " + layer.direction : "");
}

// the layer and gate choices of a new inspection (the previous choice kept where it still exists)
function setUnitChoices(result) {
  const layers = result.layers.map((l, i) => [l, i]).filter(([l]) => l.units && Object.keys(l.units).length);
  $("units-part").hidden = layers.length === 0;
  if (!layers.length) {
    $("units").replaceChildren();
    return false;
  }
  const bidir = result.layers.some((l) => l.direction === "backward");
  const select = $("units-layer");
  const before = select.value;
  select.replaceChildren(...layers.map(([l, i]) => new Option(layerName(l, bidir), String(i))));
  if (layers.some(([, i]) => String(i) === before)) select.value = before;
  setGateChoices(result);
  return true;
}

function setGateChoices(result) {
  const layer = result.layers[Number($("units-layer").value)];
  const select = $("units-gate");
  const before = select.value;
  const gates = Object.keys(layer.units);
  select.replaceChildren(...gates.map((g) => new Option(g, g)));
  if (gates.includes(before)) select.value = before;
}

function renderUnits(result, n) {
  const layer = result.layers[Number($("units-layer").value)];
  const gate = $("units-gate").value;
  const by = $("units-sort").value;
  const tokens = Math.min(n, result.unit_tokens || 0);
  const rows = layer.units[gate].map((row) => row.slice(0, tokens));
  const order = unitOrder(rows, by);
  const bidir = result.layers.some((l) => l.direction === "backward");
  const where = layerName(layer, bidir) + ", " + gate + " gate";
  $("units-note").textContent = rows.length + " units \u00d7 " + tokens + " tokens of " + where +
    (tokens < result.tokens.length ? " (the first " + tokens + " of " + result.tokens.length + " tokens)" : "") +
    "; sorted by " + $("units-sort").selectedOptions[0].textContent + ".";
  $("units-focus").textContent = "";
  const table = $("units");
  table.replaceChildren();
  table.dataset.layer = String(layer.layer);
  table.dataset.direction = layer.direction;
  table.dataset.gate = gate;
  table.dataset.sort = by;
  const caption = table.createCaption();
  caption.className = "visually-hidden";
  caption.textContent = "Rows: the units of " + where + "; columns: the words.";
  const headRow = table.createTHead().insertRow();
  const corner = Object.assign(document.createElement("th"), { scope: "col", className: "corner", textContent: "unit" });
  headRow.appendChild(corner);
  for (let t = 0; t < tokens; t++) {
    headRow.appendChild(Object.assign(document.createElement("th"), { scope: "col", textContent: result.words[t] }));
  }
  const body = table.createTBody();
  order.forEach((u, r) => {
    const tr = body.insertRow();
    tr.dataset.unit = String(u);
    tr.appendChild(Object.assign(document.createElement("th"), { scope: "row", textContent: "unit " + u }));
    rows[u].forEach((v, t) => {
      const td = tr.insertCell();
      const color = gateColor(v);
      td.style.background = color;
      td.style.color = textOn(color);
      td.tabIndex = r === 0 && t === 0 ? 0 : -1; // one stop in the Tab order; arrows move inside
      td.dataset.row = String(r);
      td.dataset.t = String(t);
      td.dataset.value = String(v);
      td.title = `unit ${u} at "${result.words[t]}": ${v.toFixed(4)}`;
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = v.toFixed(2);
      td.appendChild(value);
    });
  });
}

// the arrow keys (and Home, End, Page Up, Page Down) move the focus from cell to cell
function moveInUnits(event) {
  const td = event.target.closest("td");
  if (!td) return;
  const body = $("units").tBodies[0];
  const last = body.rows.length - 1;
  const width = body.rows[0].cells.length - 1; // the row header is cell 0
  let r = Number(td.dataset.row);
  let t = Number(td.dataset.t);
  const moves = {
    ArrowLeft: () => (t = Math.max(0, t - 1)),
    ArrowRight: () => (t = Math.min(width - 1, t + 1)),
    ArrowUp: () => (r = Math.max(0, r - 1)),
    ArrowDown: () => (r = Math.min(last, r + 1)),
    Home: () => (t = 0),
    End: () => (t = width - 1),
    PageUp: () => (r = 0),
    PageDown: () => (r = last),
  };
  if (!moves[event.key]) return;
  event.preventDefault();
  moves[event.key]();
  body.rows[r].cells[t + 1].focus();
}

function focusUnitCell(event) {
  const td = event.target.closest("td");
  if (!td) return;
  for (const other of $("units").querySelectorAll("td[tabindex='0']")) other.tabIndex = -1;
  td.tabIndex = 0;
  const result = state.inspection;
  const t = Number(td.dataset.t);
  $("units-focus").textContent = "Unit " + td.parentElement.dataset.unit + " at \u201c" + result.words[t] +
    "\u201d (token " + (t + 1) + "): " + Number(td.dataset.value).toFixed(4);
}

function redrawUnits(changed) {
  const result = state.inspection;
  if (!result) return;
  if (changed === "layer") setGateChoices(result);
  renderUnits(result, Math.min(result.tokens.length, state.maxTokens));
  updateScrollCue();
}

// the cue that the heatmap scrolls sideways, only when it does
function updateScrollCue() {
  const box = $("heatmap-box");
  $("scroll-cue").hidden = $("gates-part").hidden || box.scrollWidth <= box.clientWidth + 1;
}

function renderInspection(result, note) {
  const n = Math.min(result.tokens.length, state.maxTokens);
  $("inspect-note").textContent = note || "";
  $("inspect-note").hidden = !note;
  $("method").textContent =
    (result.contribution_method === "leave-one-out"
      ? "Leaving each word out: how much the probability of \u201c" + result.label + "\u201d drops without the word"
      : "Occlusion: how much the probability of \u201c" + result.label +
        "\u201d drops when a word is replaced by the unknown-word token") +
    " (red: for, blue: against; the stronger the colour, the larger the effect)." +
    (n < result.tokens.length ? ` First ${n} of ${result.tokens.length} tokens.` : "");
  renderWords(result, n);
  const gates = result.layers.length > 0;
  $("gates-part").hidden = !gates;
  state.inspection = gates ? result : null;
  if (gates) {
    renderHeatmap(result, n);
    if (setUnitChoices(result)) renderUnits(result, n);
  } else {
    $("heatmap").replaceChildren();
    $("units").replaceChildren();
  }
  $("inspect").hidden = false;
  updateScrollCue();
}

// where the server cannot look inside the model (a Conv1D front: its recurrent steps are not
// words), each word's effect measured through v1/predict: the text without that word
async function leaveOneOut(text, label) {
  const keep = Math.min(state.maxTokens, state.maxlen || state.maxTokens);
  const words = text.split(/\s+/).filter(Boolean).slice(-keep); // the model reads the end
  if (words.length < 2) return null;
  const texts = [words.join(" "), ...words.map((_, i) => words.filter((_, j) => j !== i).join(" "))];
  const scores = [];
  let batch = [];
  let chars = 0;
  const flush = async () => {
    const answer = await api("POST", "v1/predict", { texts: batch });
    scores.push(...answer.predictions.map((p) => p.scores));
    batch = [];
    chars = 0;
  };
  for (const t of texts) {
    if (batch.length && (batch.length >= state.maxTexts || chars + t.length > state.maxChars)) await flush();
    batch.push(t);
    chars += t.length;
  }
  if (batch.length) await flush();
  const base = scores[0][label];
  return {
    label,
    contribution_method: "leave-one-out",
    tokens: words,
    words,
    contributions: scores.slice(1).map((s) => base - s[label]),
    layers: [],
  };
}

function calmNote(message) {
  if (/conv1d/i.test(message)) {
    return "This model has a Conv1D front, so its recurrent steps are not words and the gates per word cannot be shown; the word contributions below come from leaving each word out.";
  }
  return "The gates per word cannot be shown for this model (" + message + "); the word contributions below come from leaving each word out.";
}

async function run(event) {
  if (event) event.preventDefault();
  if (state.busy) return; // the button stays enabled (a disabled button drops the focus)
  const text = $("text").value;
  if (!text.trim()) {
    showError("Type some text first.");
    $("text").focus();
    return;
  }
  showError("");
  state.busy = true;
  $("predict").setAttribute("aria-disabled", "true");
  $("announce").textContent = "Predicting\u2026";
  try {
    // the prediction shows whatever the inspection answers
    const [pred, inspection] = await Promise.allSettled([
      api("POST", "v1/predict", { texts: [text] }),
      api("POST", "v1/inspect", { text }),
    ]);
    if (pred.status === "rejected") {
      $("announce").textContent = "";
      showError(pred.reason.message);
      return;
    }
    const p = pred.value.predictions[0];
    renderPrediction(p);
    $("announce").textContent = "Prediction: " + p.label + ", " + (100 * p.scores[p.label]).toFixed(1) + " %.";
    if (inspection.status === "fulfilled") {
      renderInspection(inspection.value, "");
    } else if (inspection.reason.status === 422) {
      let occluded = null;
      try {
        occluded = await leaveOneOut(text, p.label);
      } catch (err) {
        occluded = null;
      }
      if (occluded) renderInspection(occluded, calmNote(inspection.reason.message));
      else showInspectNote(calmNote(inspection.reason.message).replace(/; the word contributions.*$/, "."));
    } else {
      showInspectNote("The look inside the model is not available for this text: " + inspection.reason.message);
    }
    if (state.needsToken) loadModel();
  } catch (err) {
    showError(err.message);
  } finally {
    state.busy = false;
    $("predict").removeAttribute("aria-disabled");
  }
}

function showInspectNote(note) {
  $("inspect-note").textContent = note;
  $("inspect-note").hidden = false;
  $("method").textContent = "";
  $("words").replaceChildren();
  $("gates-part").hidden = true;
  $("inspect").hidden = false;
}

function toggleNumbers() {
  const button = $("show-numbers");
  const on = button.getAttribute("aria-pressed") !== "true";
  button.setAttribute("aria-pressed", String(on));
  button.textContent = on ? "Hide the numbers" : "Show the numbers";
  $("inspect").classList.toggle("numbers", on);
  updateScrollCue();
}

document.addEventListener("DOMContentLoaded", () => {
  $("form").addEventListener("submit", run);
  for (const button of document.querySelectorAll(".example")) {
    button.addEventListener("click", () => {
      $("text").value = button.dataset.text;
      run();
    });
  }
  $("show-numbers").addEventListener("click", toggleNumbers);
  $("units-layer").addEventListener("change", () => redrawUnits("layer"));
  $("units-gate").addEventListener("change", () => redrawUnits("gate"));
  $("units-sort").addEventListener("change", () => redrawUnits("sort"));
  $("units").addEventListener("keydown", moveInUnits);
  $("units").addEventListener("focusin", focusUnitCell);
  window.addEventListener("resize", updateScrollCue);
  loadModel();
});
