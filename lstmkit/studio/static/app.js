// lstmkit studio page: talks to this studio's /api (no external resources; uPlot is vendored).
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: "",
  options: null,
  recipeValues: {},
  view: null,
  runId: null,
  rows: new Map(), // "step/split" -> row of the run on screen
  stream: null, // AbortController of the live stream
  charts: {}, // element id -> { plot, key }
  uploads: [],
};

const SEED_FIELDS = [
  ["max_sentence_length", "max_sentence_length", "int", "words kept per text"],
  ["hidden_size", "hidden_size", "int", "units per layer"],
  ["dropout_keep_prob", "dropout_keep_prob", "float", "probability of keeping a unit"],
  ["num_epochs", "num_epochs", "int", ""],
  ["batch_size", "batch_size", "int", ""],
  ["evaluate_every", "evaluate_every", "int", "steps; 0 = once per epoch"],
  ["learn_rate", "learn_rate", "float", ""],
  ["num_layers", "num_layers", "int", ""],
];
const OUR_FIELDS = [
  ["cell", "cell type", "choice:lstm,gru,rnn", ""],
  ["bidirectional", "bidirectional", "bool", ""],
  ["optimizer", "optimizer", "choice:adam,adamw,rmsprop,sgd,adagrad", ""],
  ["vocab_size", "vocabulary size", "int", "most frequent words kept"],
  ["embedding_dim", "embedding_dim", "int", ""],
  ["validation_split", "validation split", "float", "fraction held out"],
  ["max_steps", "max_steps", "int", "optional cap on steps"],
];
const ALL_FIELDS = [...SEED_FIELDS, ...OUR_FIELDS];

// -- API -----------------------------------------------------------------------------------
function headers(json) {
  const h = {};
  if (json) h["Content-Type"] = "application/json";
  if (state.token) h.Authorization = "Bearer " + state.token;
  return h;
}

async function api(method, path, body, raw) {
  const response = await fetch(path, {
    method,
    headers: headers(body !== undefined && !raw),
    body: body === undefined ? undefined : raw ? body : JSON.stringify(body),
  });
  let payload = null;
  try {
    payload = await response.json();
  } catch (err) {
    payload = null;
  }
  if (!response.ok) {
    if (response.status === 401) $("auth").hidden = false;
    const error = new Error(describe(payload && payload.detail) || response.status + " " + response.statusText);
    error.status = response.status;
    error.detail = payload && payload.detail;
    throw error;
  }
  return payload;
}

function describe(detail) {
  if (Array.isArray(detail)) return detail.map((d) => (d.loc ? d.loc.slice(1).join(".") + ": " : "") + d.msg).join("; ");
  return detail;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
}

// -- server-sent events over fetch (so the bearer token goes in a header) --------------------
async function stream(path, onEvent, controller) {
  const response = await fetch(path, { headers: headers(false), signal: controller.signal });
  if (!response.ok) {
    if (response.status === 401) $("auth").hidden = false;
    throw new Error("live stream: " + response.status);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(event, JSON.parse(data.join("\n")));
    }
  }
}

// -- charts (uPlot) ---------------------------------------------------------------------------
// Each chart is a role="img" whose aria-label says its latest values; its legend shows them too
// (not "--" until the pointer is over it); its y axis has a title; "Show as table" opens its
// numbers. Charts take their container's width and follow it (a ResizeObserver).
const COLORS = ["#3758c9", "#e4572e", "#12a150", "#a23b72", "#f29e4c", "#2e86ab", "#6c757d", "#8338ec"];
const CHART_HEIGHT = 220;
const TABLE_ROWS = 50; // the newest steps a chart's table lists

function fmtValue(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "";
  const a = Math.abs(v);
  if (a >= 1000) return Math.round(v).toLocaleString("en");
  if (a === 0) return "0";
  return String(Number(v.toPrecision(a >= 1 ? 4 : 3)));
}

// -- tick labels: tickLabels of lstmkit/serve/static/ticks.js (served here as static/ticks.js;
// the serving pages' charts use the same), each one fits inside the chart (axisSize) ----------
// an axis's size (a y axis's width) from its widest label: none is cut at the chart's edge
function textWidth(u, font, text) {
  u.ctx.font = font;
  return u.ctx.measureText(text).width / (uPlot.pxRatio || 1);
}

function axisSize(u, values, axisIdx, cycleNum) {
  const axis = u.axes[axisIdx];
  if (cycleNum > 1 && axis._size) return axis._size; // uPlot's layout converges
  const labels = (values || []).filter((v) => v !== null && v !== undefined && v !== "");
  const ticks = (axis.ticks.show ? axis.ticks.size : 0) + axis.gap;
  if (axis.side % 2 === 0) return Math.ceil(ticks + axis.font[2] * 1.5 + 2); // an x axis: one line
  const widest = Math.max(0, ...labels.map((v) => textWidth(u, axis.font[0], String(v))));
  return Math.ceil(ticks + widest + 4);
}

// room on the right for half of the last x label (it is centred on the plot's right edge)
function rightPadding(u) {
  const axis = u.axes && u.axes[0];
  if (!axis || !axis._values) return 28;
  const labels = axis._values.filter((v) => v !== null && v !== undefined && v !== "");
  const widest = Math.max(0, ...labels.map((v) => textWidth(u, axis.font[0], String(v))));
  return Math.max(12, Math.ceil(widest / 2) + 6);
}

// what each axis drew, where (CSS px in the chart's canvas), as the chart's data-ticks: for
// tests and for anyone who wants the numbers
function recordTicks(u) {
  const pr = uPlot.pxRatio || 1;
  const axes = u.axes.map((axis, i) => {
    const labels = [];
    const boxes = [];
    (axis._values || []).forEach((label, k) => {
      if (label === null || label === undefined || label === "") return;
      const at = u.valToPos(axis._splits[k], axis.scale, true) / pr;
      const w = textWidth(u, axis.font[0], String(label));
      const h = axis.font[2];
      const off = (axis.ticks.show ? axis.ticks.size : 0) + axis.gap;
      let box;
      if (axis.side === 3) box = [axis._pos - off - w, at - h / 2, axis._pos - off, at + h / 2];
      else if (axis.side === 1) box = [axis._pos + off, at - h / 2, axis._pos + off + w, at + h / 2];
      else if (axis.side === 2) box = [at - w / 2, axis._pos + off, at + w / 2, axis._pos + off + h];
      else box = [at - w / 2, axis._pos - off - h, at + w / 2, axis._pos - off];
      labels.push(String(label));
      boxes.push(box.map((x) => Math.round(x * 10) / 10));
    });
    return { axis: i, side: axis.side, labels, boxes };
  });
  u.root.parentElement.dataset.ticks = JSON.stringify({ width: u.width, height: u.height, axes });
}

const tickValues = (u, splits) => tickLabels(splits);

function lastIndex(values) {
  for (let i = values.length - 1; i >= 0; i--) if (values[i] !== null && values[i] !== undefined) return i;
  return -1;
}

// the legend's value: at the pointer, else the series' latest (uPlot passes idx null then)
function legendValue(u, v, si, idx) {
  if (idx === null || idx === undefined) {
    const i = lastIndex(u.data[si]);
    return i < 0 ? "" : fmtValue(u.data[si][i]);
  }
  return fmtValue(v);
}

function chartWidth(el) {
  return Math.max(200, Math.floor(el.clientWidth || 360));
}

// the chart in words: its title, the points it has and each series' latest value
function describeChart(id) {
  const entry = state.charts[id];
  const el = $(id);
  const title = ($(id + "-title") || {}).textContent || id;
  if (!entry || !entry.xs.length) {
    el.setAttribute("aria-label", title + " chart: no points yet.");
    return;
  }
  const { xs, ys, labels } = entry;
  const last = xs[xs.length - 1];
  const parts = labels.map((label, k) => {
    const i = lastIndex(ys[k]);
    if (i < 0) return null;
    return label + " " + fmtValue(ys[k][i]) + (xs[i] !== last ? " (at step " + xs[i] + ")" : "");
  }).filter(Boolean);
  el.setAttribute("aria-label", title + " chart, " + xs.length + " steps; latest, at step " + last + ": " + (parts.join(", ") || "no values") + ".");
}

function plot(id, labels, xs, ys, opts = {}) {
  const el = $(id);
  const key = labels.join("|");
  const data = [xs, ...ys];
  let entry = state.charts[id];
  if (entry && entry.key !== key) {
    entry.plot.destroy();
    entry = null;
  }
  if (!entry) {
    el.replaceChildren();
    const plotOpts = {
      width: chartWidth(el),
      height: CHART_HEIGHT,
      scales: { x: { time: false }, y: opts.log ? { distr: 3 } : {} },
      padding: [null, rightPadding, null, null],
      axes: [
        { label: "step", values: tickValues, size: axisSize },
        { label: el.dataset.y || "", values: tickValues, size: axisSize },
      ],
      hooks: { draw: [recordTicks] },
      series: [
        { label: "step", value: legendValue },
        ...labels.map((label, i) => ({
          label,
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
          points: { show: xs.length < 60 },
          value: legendValue,
          ...((opts.styles || [])[i] || {}),
        })),
      ],
    };
    if (opts.bands) plotOpts.bands = opts.bands; // a filled band between two series
    entry = { plot: new uPlot(plotOpts, data, el), key };
    state.charts[id] = entry;
    resizer.observe(el);
  } else {
    entry.plot.setData(data);
  }
  Object.assign(entry, { labels, xs, ys });
  el.dataset.points = String(xs.length);
  describeChart(id);
  if (!$(id + "-table").hidden) renderChartTable(id);
}

// a chart's width follows its container (a phone, a window made narrower)
const resizer = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    const entry = state.charts[target.id];
    if (!entry) continue;
    const width = chartWidth(target);
    if (Math.abs(width - entry.plot.width) > 1) entry.plot.setSize({ width, height: entry.plot.height });
  }
});

// under each chart: "Show as table" and the table it opens (the newest steps, every series)
function addChartTables() {
  for (const el of document.querySelectorAll(".plot[data-y]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary table-toggle";
    button.id = el.id + "-toggle";
    button.textContent = "Show as table";
    button.setAttribute("aria-expanded", "false");
    button.setAttribute("aria-controls", el.id + "-table");
    const box = document.createElement("div");
    box.id = el.id + "-table";
    box.className = "scroll chart-table";
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    box.setAttribute("aria-label", (($(el.id + "-title") || {}).textContent || "chart") + " as a table");
    box.hidden = true;
    button.addEventListener("click", () => {
      const open = box.hidden;
      box.hidden = !open;
      button.setAttribute("aria-expanded", String(open));
      button.textContent = open ? "Hide the table" : "Show as table";
      if (open) renderChartTable(el.id);
    });
    el.after(button, box);
  }
}

function renderChartTable(id) {
  const box = $(id + "-table");
  const entry = state.charts[id];
  const table = document.createElement("table");
  const title = ($(id + "-title") || {}).textContent || id;
  if (!entry || !entry.xs.length) {
    box.replaceChildren(Object.assign(document.createElement("p"), { textContent: "No points yet.", className: "muted small" }));
    return;
  }
  const { xs, ys, labels } = entry;
  const first = Math.max(0, xs.length - TABLE_ROWS);
  table.createCaption().textContent = title + (first > 0 ? " (the newest " + TABLE_ROWS + " of " + xs.length + " steps)" : "");
  const head = table.createTHead().insertRow();
  for (const label of ["step", ...labels]) {
    head.appendChild(Object.assign(document.createElement("th"), { textContent: label, scope: "col", className: "num" }));
  }
  const body = table.createTBody();
  for (let i = xs.length - 1; i >= first; i--) {
    const tr = body.insertRow();
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: String(xs[i]), scope: "row", className: "num" }));
    for (const values of ys) Object.assign(tr.insertCell(), { textContent: fmtValue(values[i]), className: "num" });
  }
  box.replaceChildren(table);
}

function clearCharts() {
  for (const [id, entry] of Object.entries(state.charts)) {
    entry.plot.destroy();
    resizer.unobserve($(id));
    const table = $(id + "-table");
    if (table) table.replaceChildren();
    describeNothing(id);
  }
  state.charts = {};
}

function describeNothing(id) {
  const el = $(id);
  if (el && el.getAttribute("role") === "img" && el.dataset.y !== undefined) {
    el.setAttribute("aria-label", (($(id + "-title") || {}).textContent || id) + " chart: no points yet.");
    el.dataset.points = "0";
  }
}

// rows -> aligned arrays: xs (sorted steps), one array per (split, getter)
function series(rows, specs) {
  const steps = [...new Set(rows.map((r) => r.step))].sort((a, b) => a - b);
  const index = new Map(steps.map((s, i) => [s, i]));
  const ys = specs.map(() => steps.map(() => null));
  for (const row of rows) {
    specs.forEach((spec, k) => {
      if (spec.split && row.split !== spec.split) return;
      const v = spec.get(row);
      if (v !== undefined && v !== null && Number.isFinite(v)) ys[k][index.get(row.step)] = v;
    });
  }
  return [steps, ys];
}

// -- new-run form -----------------------------------------------------------------------------
function fieldInput(name, label, kind, hint) {
  const wrap = document.createElement("div");
  wrap.className = "field";
  const text = document.createElement("label");
  text.htmlFor = "f-" + name;
  text.textContent = label + " ";
  if (hint) {
    const h = document.createElement("span");
    h.className = "hint";
    h.textContent = "(" + hint + ")";
    text.appendChild(h);
  }
  wrap.appendChild(text);
  let input;
  if (kind.startsWith("choice:")) {
    input = document.createElement("select");
    for (const v of kind.slice(7).split(",")) input.add(new Option(v, v));
  } else if (kind === "bool") {
    input = document.createElement("select");
    input.add(new Option("no", "false"));
    input.add(new Option("yes", "true"));
  } else {
    input = document.createElement("input");
    input.type = "number";
    input.step = kind === "int" ? "1" : "any";
    const schema = state.options.schema.properties[name];
    const bounds = (schema && schema.anyOf && schema.anyOf[0]) || {};
    if (bounds.minimum !== undefined) input.min = bounds.minimum;
    if (bounds.maximum !== undefined) input.max = bounds.maximum;
  }
  input.id = "f-" + name;
  input.name = name;
  input.dataset.kind = kind;
  wrap.appendChild(input);
  const err = document.createElement("small");
  err.className = "field-error";
  err.id = "f-" + name + "-error";
  err.dataset.for = name;
  wrap.appendChild(err);
  return wrap;
}

function buildForm() {
  $("seed-fields").replaceChildren(...SEED_FIELDS.map((f) => fieldInput(...f)));
  $("our-fields").replaceChildren(...OUR_FIELDS.map((f) => fieldInput(...f)));
  const ds = $("f-dataset");
  ds.replaceChildren();
  for (const d of state.options.datasets) ds.add(new Option(d.label, d.id));
  // each field's error slot describes it (a screen reader reads the reason with the field)
  for (const slot of document.querySelectorAll(".field-error[data-for]")) {
    const input = $("f-" + slot.dataset.for);
    if (input) input.setAttribute("aria-describedby", slot.id);
  }
  ds.addEventListener("change", onDatasetChange);
  $("f-recipe").addEventListener("change", () => fillRecipe());
  $("reset").addEventListener("click", () => fillRecipe());
  $("f-file").addEventListener("change", onFileChosen);
  $("f-upload_id").addEventListener("change", fillColumns);
  $("f-task").addEventListener("change", onTaskChange);
  $("forecast-series").addEventListener("change", () => showSeries(state.runId, $("forecast-series").value));
  $("run-form").addEventListener("submit", onSubmit);
  onDatasetChange();
}

function onDatasetChange() {
  const id = $("f-dataset").value;
  const recipes = state.options.recipes.filter((r) => !r.error);
  // in the dataset's order: the seeds' own recipes first (imdb-seed000 is the note's run_lstm)
  const ds = state.options.datasets.find((d) => d.id === id);
  const rank = (r) => (ds && ds.recipes ? ds.recipes.indexOf(r.name) : 0);
  const own = recipes.filter((r) => r.dataset === id).sort((a, b) => rank(a) - rank(b));
  // a recipe of another dataset can start from its architecture (the dataset is overridden)
  const list = own.length ? own.concat(recipes.filter((r) => r.dataset !== id)) : recipes;
  const select = $("f-recipe");
  select.replaceChildren(...list.map((r) => new Option(r.name + (r.dataset === id ? "" : " (" + r.dataset + " recipe)"), r.name)));
  $("upload-box").hidden = id !== "upload";
  if (id === "upload") loadUploads();
  onTaskChange();
}

// an uploaded file is classified (text) or forecast: each shows its own column choices
function forecasting() {
  return $("f-dataset").value === "upload" && $("f-task").value === "forecast";
}

function onTaskChange() {
  const forecast = forecasting();
  for (const el of document.querySelectorAll(".task-text")) el.hidden = forecast;
  for (const el of document.querySelectorAll(".task-forecast")) el.hidden = !forecast;
  fillRecipe();
}

function fillRecipe() {
  const recipe = state.options.recipes.find((r) => r.name === $("f-recipe").value);
  if (!recipe) return;
  // a forecast of an uploaded file takes its settings from the data, not from the recipe:
  // the fields start empty and only what is filled in is sent
  const forecast = forecasting();
  state.recipeValues = forecast ? {} : recipe.values;
  $("recipe-description").textContent = forecast
    ? "The recipe only names the run: a forecast's settings come from the data."
    : (recipe.description || "") + (recipe.seed_figure ? " — the seed reports " + (100 * recipe.seed_figure).toFixed(1) + "%" : "");
  const unused = state.options.not_applicable[forecast ? "upload:forecast" : $("f-dataset").value] || [];
  for (const [name] of ALL_FIELDS) {
    const input = $("f-" + name);
    const v = state.recipeValues[name];
    input.value = v === null || v === undefined ? "" : String(v);
    input.disabled = unused.includes(name); // e.g. MNIST rows have no words
    input.title = input.disabled ? (forecast ? "not used by a forecast" : "not used by this dataset") : "";
    if (input.tagName === "INPUT") input.placeholder = forecast && !input.disabled ? "from the data" : "";
  }
  clearFieldErrors();
}

function clearFieldErrors() {
  for (const el of document.querySelectorAll(".field-error")) el.textContent = "";
  for (const el of document.querySelectorAll(".invalid")) {
    el.classList.remove("invalid");
    el.removeAttribute("aria-invalid");
  }
}

// the reason next to the field; the field marked invalid (it is described by the reason)
function setFieldError(field, message) {
  const slot = document.querySelector('.field-error[data-for="' + field + '"]');
  if (!slot) return false;
  slot.textContent = message;
  const input = $("f-" + field);
  if (input) {
    input.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
  }
  return true;
}

function readValue(name) {
  const input = $("f-" + name);
  const kind = input.dataset.kind;
  const text = input.value.trim();
  if (text === "") return undefined;
  if (kind === "bool") return text === "true";
  if (kind === "int" || kind === "float") {
    const n = Number(text);
    return Number.isFinite(n) ? n : text; // a non-number goes to the server, which says why
  }
  return text;
}

async function onSubmit(event) {
  event.preventDefault();
  clearFieldErrors();
  showError("");
  const body = { recipe: $("f-recipe").value, dataset: $("f-dataset").value };
  const name = $("f-name").value.trim();
  if (name) body.name = name;
  for (const [field] of ALL_FIELDS) {
    if ($("f-" + field).disabled) continue;
    const v = readValue(field);
    const recipeValue = state.recipeValues[field];
    if (v !== undefined && v !== recipeValue) body[field] = v; // only what differs from the recipe
  }
  if (body.dataset === "upload") {
    body.task = $("f-task").value;
    const own = body.task === "forecast" ? ["upload_id", "target_column", "time_column", "id_column"] : ["upload_id", "text_column", "label_column"];
    for (const f of own) if ($("f-" + f).value) body[f] = $("f-" + f).value; // "" = none
    const horizon = $("f-horizon").value.trim();
    if (body.task === "forecast" && horizon !== "") body.horizon = Number.isFinite(Number(horizon)) ? Number(horizon) : horizon;
  }
  if (state.starting) return;
  state.starting = true;
  $("start").setAttribute("aria-disabled", "true");
  $("form-status").textContent = "checking…";
  try {
    const run = await api("POST", "api/runs", body);
    $("form-status").textContent = "";
    location.hash = "#/run/" + run.id;
  } catch (err) {
    $("form-status").textContent = "";
    if (err.status === 422 && Array.isArray(err.detail)) {
      const fields = [];
      for (const d of err.detail) {
        const field = d.loc && d.loc.length > 1 ? d.loc[1] : null;
        if (field && setFieldError(field, d.msg)) fields.push(field);
        else showError(describe([d]));
      }
      if (fields.length) {
        $("form-status").textContent = fields.length + (fields.length === 1 ? " field needs" : " fields need") + " a change: " + fields.join(", ") + ".";
        const first = $("f-" + fields[0]);
        if (first && !first.disabled) first.focus(); // the keyboard goes where the fix is
      }
    } else showError(err.message);
  } finally {
    state.starting = false;
    $("start").removeAttribute("aria-disabled");
  }
}

async function loadUploads() {
  try {
    state.uploads = await api("GET", "api/uploads");
  } catch (err) {
    showError(err.message);
    return;
  }
  const select = $("f-upload_id");
  select.replaceChildren(...state.uploads.map((u) => new Option(u.filename + " (" + u.rows + " rows)", u.id)));
  fillColumns();
  $("upload-info").textContent =
    "At most " + (state.options.max_upload_bytes / 1048576).toFixed(0) + " MiB; stored inside the studio's home.";
}

function fillColumns() {
  const upload = state.uploads.find((u) => u.id === $("f-upload_id").value);
  const columns = upload ? upload.columns : [];
  for (const f of ["text_column", "label_column", "target_column"]) $("f-" + f).replaceChildren(...columns.map((c) => new Option(c, c)));
  if (columns.length > 1) $("f-label_column").value = columns[columns.length - 1];
  // a forecast: the long format's names (unique_id, ds, y) when the file has them
  $("f-time_column").replaceChildren(new Option("none (the file's order)", ""), ...columns.map((c) => new Option(c, c)));
  $("f-id_column").replaceChildren(new Option("none (one series)", ""), ...columns.map((c) => new Option(c, c)));
  if (columns.includes("y")) $("f-target_column").value = "y";
  else if (columns.length) $("f-target_column").value = columns[columns.length - 1];
  $("f-time_column").value = columns.includes("ds") ? "ds" : "";
  $("f-id_column").value = columns.includes("unique_id") ? "unique_id" : "";
}

async function onFileChosen() {
  const file = $("f-file").files[0];
  if (!file) return;
  $("upload-info").textContent = "uploading " + file.name + "…";
  try {
    const meta = await api("POST", "api/uploads?filename=" + encodeURIComponent(file.name), file, true);
    await loadUploads();
    $("f-upload_id").value = meta.id;
    fillColumns();
    $("upload-info").textContent = meta.filename + ": " + meta.rows + " rows, columns " + meta.columns.join(", ");
  } catch (err) {
    $("upload-info").textContent = "";
    setFieldError("upload_id", err.message);
  }
}

// -- runs list --------------------------------------------------------------------------------
function fmtPct(v) {
  return v === null || v === undefined ? "" : (100 * v).toFixed(1) + "%";
}

// the run's final metrics: the test set, or (own data without a test file) the validation set
function finalMetrics(run) {
  const m = run.metrics;
  if (!m) return null;
  if (m.test) return { split: "test", ...m.test };
  if (m.evaluation) return { split: m.evaluation.split || "valid", ...m.evaluation };
  return null;
}

function fmtLoss(v) {
  return typeof v === "number" ? v.toFixed(4) : "";
}

function bestVal(run) {
  const m = run.metrics;
  if (m && m.best_val && m.best_val.value !== null && m.best_val.value !== undefined) return m.best_val.value;
  return null;
}

// the Runs table is updated in place: one row per run id, kept across the refreshes (a focused
// checkbox or link keeps its focus, a tick stays ticked); only changed text is written
function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function runRow(run) {
  const tr = document.createElement("tr");
  tr.dataset.id = run.id;
  const box = document.createElement("input");
  box.type = "checkbox";
  box.value = run.id;
  box.id = "pick-" + run.id;
  tr.insertCell().appendChild(box);
  const link = document.createElement("a");
  link.href = "#/run/" + run.id;
  tr.insertCell().appendChild(link);
  const st = document.createElement("span");
  tr.insertCell().appendChild(st);
  for (let k = 0; k < 3; k++) tr.insertCell();
  for (let k = 0; k < 3; k++) tr.insertCell().className = "num";
  return tr;
}

function updateRunRow(tr, run) {
  const [pick, name, status, recipe, dataset, started, step, val, test] = tr.cells;
  const box = pick.firstChild;
  const label = "compare " + run.name;
  if (box.getAttribute("aria-label") !== label) box.setAttribute("aria-label", label);
  setText(name.firstChild, run.name);
  const st = status.firstChild;
  if (st.className !== "status " + run.status) st.className = "status " + run.status;
  setText(st, run.status);
  setText(recipe, run.recipe);
  setText(dataset, run.dataset);
  setText(started, run.started ? new Date(run.started * 1000).toLocaleString() : "");
  setText(step, run.metrics ? String(run.metrics.steps) : "");
  setText(val, fmtPct(bestVal(run)));
  const final = finalMetrics(run);
  setText(test, final ? fmtPct(final.accuracy) : "");
}

async function showRuns() {
  const runs = await api("GET", "api/runs");
  const body = $("runs-table").tBodies[0];
  const existing = new Map([...body.rows].map((tr) => [tr.dataset.id, tr]));
  const wanted = runs.slice().reverse(); // newest first
  const keep = new Set(wanted.map((r) => r.id));
  for (const [id, tr] of existing) if (!keep.has(id)) tr.remove();
  let next = body.firstElementChild;
  for (const run of wanted) {
    let tr = existing.get(run.id);
    if (!tr) tr = runRow(run);
    updateRunRow(tr, run);
    if (tr === next) next = next.nextElementSibling;
    else body.insertBefore(tr, next); // a new row (an old one moves only if the order changed)
  }
  await showRepeats();
  $("runs-table").dataset.refreshed = String(Number($("runs-table").dataset.refreshed || 0) + 1);
}

// -- one run, live ----------------------------------------------------------------------------
function stopStream() {
  if (state.stream) state.stream.abort();
  state.stream = null;
}

async function showRun(id) {
  stopStream();
  clearCharts();
  state.runId = id;
  state.rows = new Map();
  state.runValues = null;
  state.lastStatus = null;
  state.forecastShown = null;
  hideForecast();
  $("run-log").textContent = "";
  // nothing of the run shown before stays on screen while this one loads
  $("run-title").textContent = "";
  $("run-status").textContent = "";
  $("run-status").className = "status";
  $("run-progress").textContent = "";
  $("test-metrics").textContent = "";
  $("run-announce").textContent = "";
  const run = await api("GET", "api/runs/" + id);
  for (const row of run.rows) state.rows.set(row.step + "/" + row.split, row);
  renderRun(run);
  renderCharts();
  follow(id, run.rows.reduce((m, r) => Math.max(m, r.seq), 0));
}

function follow(id, after) {
  const controller = new AbortController();
  state.stream = controller;
  let last = after;
  let ended = false;
  stream("api/runs/" + id + "/events?after=" + after, (event, data) => {
    if (state.runId !== id) return;
    if (event === "metrics") {
      for (const row of data.rows) {
        state.rows.set(row.step + "/" + row.split, row);
        last = Math.max(last, row.seq);
      }
      renderCharts();
    } else if (event === "status") renderRun(data);
    else if (event === "log") appendLog(data.text);
    else if (event === "end") ended = true;
  }, controller).then(
    () => {
      if (!ended && state.stream === controller) setTimeout(() => follow(id, last), 1000);
    },
    (err) => {
      if (controller.signal.aborted) return;
      showError(err.message);
      if (state.stream === controller) setTimeout(() => follow(id, last), 2000);
    },
  );
}

function appendLog(text) {
  const pre = $("run-log");
  const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
  pre.textContent = (pre.textContent + text).slice(-50000);
  if (atEnd) pre.scrollTop = pre.scrollHeight;
}

function fmtSeconds(s) {
  if (s === null || s === undefined) return "";
  s = Math.round(s);
  return s >= 3600 ? Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min" : s >= 60 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : s + " s";
}

function renderRun(run) {
  $("run-title").textContent = run.name;
  const st = $("run-status");
  st.textContent = run.status;
  st.className = "status " + run.status;
  const p = run.progress || {};
  const parts = [];
  if (p.step) parts.push("step " + p.step + (p.total_steps ? " / " + p.total_steps : ""));
  if (p.tokens_per_s) parts.push(Math.round(p.tokens_per_s).toLocaleString() + " tokens/s");
  if (p.eta_s !== null && p.eta_s !== undefined) parts.push("ETA " + fmtSeconds(p.eta_s));
  if (run.status === "queued") parts.push("waiting for a free slot");
  $("run-progress").textContent = parts.join(" · ");
  $("run-error").textContent = run.error || "";
  $("run-error").hidden = !run.error;
  $("cancel").hidden = !["queued", "running"].includes(run.status);
  $("resume").hidden = !run.resumable;
  // the prediction page classifies texts: a forecaster has none (lstmkit forecast RUN_DIR)
  $("use-model").hidden = run.status !== "finished" || forecastMetrics(run) !== null;
  const final = finalMetrics(run);
  const forecast = forecastMetrics(run);
  $("test-metrics").textContent = forecast
    ? "test MASE of the model " + fmtNum(forecast.model.mase) + (forecast.winner ? "; best: " + forecastName(forecast.winner) : "")
    : final
      ? final.split + " accuracy " + fmtPct(final.accuracy) + (typeof final.loss === "number" ? ", loss " + fmtLoss(final.loss) : "")
      : "";
  if (forecast && run.status === "finished" && state.forecastShown !== run.id) {
    state.forecastShown = run.id;
    renderForecast(run, forecast);
  }
  // own texts: the classic baseline the run measured beside its model, and which one won
  const base = run.metrics && run.metrics.evaluation ? run.metrics.evaluation.baseline : null;
  const baseLine = $("baseline-line");
  baseLine.hidden = !base;
  if (base) {
    const split = run.metrics.evaluation.split || "valid";
    baseLine.textContent = "baseline " + base.name + " (" + base.description + "): " + split + " accuracy " +
      fmtPct(base[split + "_accuracy"]) + "; " + base.verdict;
    baseLine.className = base.model_wins_on_validation ? "muted" : "warn";
  }
  if (run.hints !== undefined) {
    const list = $("run-hints");
    list.replaceChildren(...run.hints.map((h) => Object.assign(document.createElement("li"), { textContent: h.text, className: h.kind })));
    list.hidden = run.hints.length === 0;
  }
  if (run.values !== undefined) state.runValues = run.values;
  renderParams(run);
  if (run.status !== state.lastStatus) {
    // a status that changes while the page is open is announced (not the one it opened with)
    if (state.lastStatus !== null) {
      const what = $("test-metrics").textContent;
      $("run-announce").textContent = "Run " + run.name + " is " + run.status + (what && run.status === "finished" ? ": " + what : "") + ".";
    }
    state.lastStatus = run.status;
    refreshQueue();
  }
}

// every form field's value in the run (from its config.json), the ones the form set marked
function renderParams(run) {
  const table = $("run-params");
  table.replaceChildren();
  const set = run.params || {};
  const values = state.runValues || {};
  const rows = [["recipe", run.recipe, false], ["dataset", run.dataset, false]];
  for (const [field] of ALL_FIELDS) {
    const v = field in values ? values[field] : set[field];
    if (v !== undefined && v !== null) rows.push([field, v, field in set]);
  }
  for (const k of ["upload_id", "task", "text_column", "label_column", "target_column", "time_column", "id_column", "horizon"]) {
    if (k in set) rows.push([k, set[k], true]);
  }
  for (const [k, v, changed] of rows) {
    const tr = table.insertRow();
    tr.insertCell().textContent = k;
    const td = tr.insertCell();
    td.textContent = String(v) + (changed ? "  (set in the form)" : "");
    if (changed) td.className = "changed";
  }
}

function renderCharts() {
  const rows = [...state.rows.values()];
  const train = (get) => ({ split: "train", get });
  const val = (get) => ({ split: "val", get });
  let [xs, ys] = series(rows, [train((r) => r.loss), val((r) => r.loss)]);
  plot("chart-loss", ["train", "validation"], xs, ys);
  [xs, ys] = series(rows, [train((r) => r.accuracy), val((r) => r.accuracy)]);
  plot("chart-accuracy", ["train", "validation"], xs, ys);
  [xs, ys] = series(rows, [train((r) => r.lr)]);
  plot("chart-lr", ["learning rate"], xs, ys);
  [xs, ys] = series(rows, [train((r) => r.grad_norm)]);
  plot("chart-grad", ["global gradient norm"], xs, ys);
  const layers = [...new Set(rows.flatMap((r) => (r.layers ? Object.keys(r.layers) : [])))];
  if (layers.length) {
    [xs, ys] = series(rows, layers.map((name) => train((r) => (r.layers && r.layers[name] && r.layers[name].update_ratio > 0 ? r.layers[name].update_ratio : null))));
    plot("chart-ratio", layers, xs, ys, { log: true });
  }
  [xs, ys] = series(rows, [train((r) => r.tokens_per_s)]);
  plot("chart-tps", ["tokens/s"], xs, ys);
}

// -- a forecast run's results: the baselines table, the coverage, one series' test window ----
const FORECAST_NAMES = {
  model: "model",
  auto_ets: "AutoETS",
  auto_theta: "AutoTheta",
  seasonal_naive: "SeasonalNaive",
  naive: "Naive",
  holt_winters: "Holt-Winters",
};
const PANEL_ROWS = ["model", "auto_ets", "auto_theta", "seasonal_naive", "naive"];
const SINGLE_ROWS = ["model", "naive", "seasonal_naive", "holt_winters"];

function forecastName(key) {
  return FORECAST_NAMES[key] || key;
}

function fmtNum(v, digits = 3) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(digits) : "";
}

// the test metrics of a forecast run (a model scored by MASE), else null
function forecastMetrics(run) {
  const t = run.metrics && run.metrics.test;
  return t && t.model && typeof t.model.mase === "number" ? t : null;
}

function hideForecast() {
  $("forecast-results").hidden = true;
  $("forecast-panel").hidden = true;
  $("forecast-table").replaceChildren();
  $("forecast-series").replaceChildren();
  $("forecast-coverage").textContent = "";
  $("forecast-caption").textContent = "";
  const img = $("forecast-image");
  if (img.src) URL.revokeObjectURL(img.src);
  img.removeAttribute("src");
  img.hidden = true;
}

// a table of methods (rows, <th scope="row">) by metrics (columns); the winner named in words
function forecastTable(caption, keys, metrics, columns, winner) {
  const table = $("forecast-table");
  table.replaceChildren();
  table.createCaption().textContent = caption;
  const head = table.createTHead().insertRow();
  for (const [label, , num] of [["forecast"], ...columns.map((c) => [c[0], c[1], true])]) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = label;
    if (num) th.className = "num";
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const key of keys) {
    const m = metrics[key];
    if (!m) continue;
    const tr = body.insertRow();
    tr.dataset.key = key;
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = forecastName(key) + (key === winner ? " (winner)" : "");
    tr.appendChild(th);
    if (key === winner) tr.className = "winner";
    for (const [, field] of columns) {
      const td = tr.insertCell();
      td.className = "num";
      td.textContent = fmtNum(m[field]);
    }
  }
}

function renderForecast(run, t) {
  $("forecast-results").hidden = false;
  if (t.per_series || t.auto_ets) {
    forecastTable(
      "Test mean over " + t.series + " series (protocol " + t.protocol + ", horizon " + t.horizon + ", MASE season " + (t.mase_season || t.season) + ")",
      PANEL_ROWS, t, [["mean MASE", "mase"], ["sMAPE (%)", "smape"]], t.winner,
    );
    const qs = t.quantiles || [];
    $("forecast-coverage").textContent = typeof t.coverage === "number"
      ? "Interval coverage: the model's " + fmtPct(t.nominal) + " interval (quantiles " + qs[0] + " to " + qs[qs.length - 1] + ") holds " +
        fmtPct(t.coverage) + " of the test values (nominal " + fmtPct(t.nominal) + ")."
      : "";
    $("forecast-panel").hidden = false;
    showSeries(run.id, null);
  } else {
    forecastTable(
      "Test errors over " + (t.windows || "the") + " test windows (season " + t.season + ")",
      SINGLE_ROWS, t, [["MAE", "mae"], ["RMSE", "rmse"], ["MASE", "mase"]], t.winner,
    );
    $("forecast-coverage").textContent = "";
    showPlotImage(run.id, t);
  }
}

// forecast.png through fetch (the bearer token goes in a header; an <img src> cannot send it)
async function showPlotImage(id, t) {
  try {
    const response = await fetch("api/runs/" + id + "/forecast.png", { headers: headers(false) });
    if (!response.ok || state.runId !== id) return;
    const img = $("forecast-image");
    img.src = URL.createObjectURL(await response.blob());
    img.alt = "Forecast plot of the test window: the model against the truth; test MAE of the model " +
      fmtNum(t.model.mae) + ", best " + forecastName(t.winner) + ".";
    img.hidden = false;
  } catch (err) {
    showError(err.message);
  }
}

async function showSeries(id, series) {
  let answer;
  try {
    answer = await api("GET", "api/runs/" + id + "/forecasts" + (series ? "?series=" + encodeURIComponent(series) : ""));
  } catch (err) {
    showError(err.message);
    return;
  }
  if (state.runId !== id) return;
  const select = $("forecast-series");
  if (select.options.length === 0) select.replaceChildren(...answer.ids.map((s) => new Option(s, s)));
  select.value = answer.series;
  plotForecast(answer);
}

function plotForecast(answer) {
  const origins = [...new Set(answer.rows.map((r) => r.origin))];
  const origin = origins[origins.length - 1];
  const rows = answer.rows.filter((r) => r.origin === origin);
  const qs = answer.quantiles;
  const lo = qs[0];
  const hi = qs[qs.length - 1];
  const mid = qs.includes("q0.5") ? "q0.5" : qs[Math.floor(qs.length / 2)];
  const ets = answer.baselines.includes("auto_ets") ? "auto_ets" : null;
  const times = rows.map((r) => r.time);
  const xs = rows.map((_, i) => i);
  const col = (k) => rows.map((r) => r[k]);
  const lines = [["truth", "y", "#1d2330"], ["model median", mid, COLORS[0]], [lo, lo, "#9aaae6"], [hi, hi, "#9aaae6"]];
  if (ets) lines.push(["AutoETS", ets, COLORS[1]]);
  const el = $("chart-forecast");
  const old = state.charts["chart-forecast"];
  if (old) old.plot.destroy();
  el.replaceChildren();
  const opts = {
    width: chartWidth(el),
    height: 260,
    padding: [null, rightPadding, null, null], // room for the last time label
    scales: { x: { time: false } },
    axes: [
      { label: answer.time_column, size: axisSize, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000], values: (u, ticks) => ticks.map((v) => (Number.isInteger(v) && times[v] !== undefined ? times[v] : "")) },
      { size: axisSize, label: "value", values: tickValues },
    ],
    hooks: { draw: [recordTicks] },
    series: [{ label: answer.time_column, value: (u, v) => (v === null || times[v] === undefined ? "" : times[v]) },
      ...lines.map(([label, , color], i) => ({ label, stroke: color, width: i >= 2 && i <= 3 ? 1 : 2, dash: i === 4 ? [6, 4] : undefined, points: { show: true } }))],
    bands: [{ series: [4, 3], fill: "rgba(55, 88, 201, 0.15)" }],
  };
  const plotted = new uPlot(opts, [xs, ...lines.map(([, key]) => col(key))], el);
  state.charts["chart-forecast"] = { plot: plotted, key: answer.series, xs, ys: [], labels: [] };
  resizer.observe(el);
  el.dataset.series = answer.series;
  el.dataset.points = String(xs.length);
  // the chart in words: the series, its window and the errors of the model and AutoETS
  const mae = (key) => {
    const pairs = rows.filter((r) => r.y !== null && r[key] !== null);
    return pairs.length ? pairs.reduce((s, r) => s + Math.abs(r.y - r[key]), 0) / pairs.length : null;
  };
  const inside = rows.filter((r) => r.y !== null && r[lo] !== null && r[hi] !== null && r.y >= r[lo] && r.y <= r[hi]).length;
  const truth = col("y").filter((v) => v !== null);
  $("forecast-caption").textContent =
    "Series " + answer.series + ": " + rows.length + " test steps, " + times[0] + " to " + times[times.length - 1] +
    (origins.length > 1 ? " (the last of " + origins.length + " forecast origins)" : "") +
    "; truth from " + fmtNum(Math.min(...truth)) + " to " + fmtNum(Math.max(...truth)) +
    ". Model median MAE " + fmtNum(mae(mid)) + (ets ? ", AutoETS MAE " + fmtNum(mae(ets)) : "") +
    "; the band " + lo + " to " + hi + " holds " + inside + " of " + rows.length + " true values.";
}

async function onCancel() {
  try {
    renderRun(await api("POST", "api/runs/" + state.runId + "/cancel"));
  } catch (err) {
    showError(err.message);
  }
  if ($("cancel").hidden) $("run-heading").focus(); // the button is gone: not to <body>
}

async function onResume() {
  try {
    await api("POST", "api/runs/" + state.runId + "/resume");
    await showRun(state.runId);
    $("run-heading").focus(); // the button is gone: not to <body>
  } catch (err) {
    showError(err.message);
  }
}

async function onUseModel() {
  $("use-model").disabled = true;
  try {
    const answer = await api("POST", "api/runs/" + state.runId + "/bundle");
    location.href = answer.url;
  } catch (err) {
    showError(err.message);
  } finally {
    $("use-model").disabled = false;
  }
}

// -- compare ----------------------------------------------------------------------------------
async function showCompare(ids) {
  clearCharts();
  state.compare = null;
  $("cmp-table").replaceChildren();
  $("cmp-spread").replaceChildren();
  $("cmp-spread-box").hidden = true;
  $("cmp-charts").hidden = ids.length < 2;
  $("cmp-box").hidden = ids.length < 2;
  if (ids.length < 2) {
    $("compare-hint").textContent = ids.length === 0
      ? "Choose two or more runs on the Runs page."
      : "Compare needs two or more runs; tick another on the Runs page.";
    return;
  }
  const answer = await api("GET", "api/compare?" + ids.map((i) => "ids=" + encodeURIComponent(i)).join("&"));
  const runs = answer.runs;
  const spread = answer.spread;
  state.compare = answer;
  $("compare-hint").textContent = runs.length + " runs" + (spread ? ", seeds of the repeated run " + spread.name : "");
  $("cmp-spread-box").hidden = !spread;
  if (spread) renderSpread(spread, runs);
  renderCompareCharts();
  const labels = runs.map((r) => r.name);
  const table = $("cmp-table");
  table.replaceChildren();
  table.createCaption().textContent = "The runs side by side";
  const head = table.createTHead().insertRow();
  for (const h of ["setting", ...labels]) head.appendChild(Object.assign(document.createElement("th"), { textContent: h, scope: "col" }));
  const body = table.createTBody();
  const line = (name, values) => {
    const tr = body.insertRow();
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: name, scope: "row" }));
    for (const v of values) {
      const td = tr.insertCell();
      td.className = "num";
      td.textContent = v === null || v === undefined ? "" : String(v);
    }
  };
  line("status", runs.map((r) => r.status));
  line("recipe", runs.map((r) => r.recipe));
  line("dataset", runs.map((r) => r.dataset));
  for (const field of answer.fields) line(field, runs.map((r) => (r.values ? r.values[field] : null)));
  line("steps", runs.map((r) => (r.metrics ? r.metrics.steps : null)));
  line("best val accuracy", runs.map((r) => fmtPct(bestVal(r))));
  line("final accuracy (test, or valid)", runs.map((r) => (finalMetrics(r) ? fmtPct(finalMetrics(r).accuracy) : null)));
  line("final loss", runs.map((r) => (finalMetrics(r) ? fmtLoss(finalMetrics(r).loss) : null)));
  line("minutes", runs.map((r) => (r.metrics ? (r.metrics.seconds / 60).toFixed(2) : null)));
}

function fmtFigure(v) {
  return typeof v === "number" && Number.isFinite(v) ? v.toFixed(4) : "";
}

// the seeds' figures (each seed a row), then mean ± std, min and max (the server's
// lstmkit.repeat.spread); each cell keeps its exact number in data-value
function renderSpread(sp, runs) {
  const table = $("cmp-spread");
  table.replaceChildren();
  const metric = sp.metric || "figure";
  table.createCaption().textContent = sp.name + ": " + metric + " of " + sp.seeds.length + " seeds" +
    (sp.spread ? "" : " (a spread needs two figures)");
  const head = table.createTHead().insertRow();
  head.appendChild(Object.assign(document.createElement("th"), { textContent: "seed", scope: "col" }));
  head.appendChild(Object.assign(document.createElement("th"), { textContent: metric, scope: "col", className: "num" }));
  const cell = (tr, text, value) => {
    const td = tr.insertCell();
    td.className = "num";
    td.textContent = text;
    if (value !== null && value !== undefined) td.dataset.value = String(value);
    return td;
  };
  const body = table.createTBody();
  const names = new Map(runs.map((r) => [r.id, r.name]));
  for (const f of sp.seeds) {
    const tr = body.insertRow();
    tr.dataset.seed = String(f.seed);
    const th = Object.assign(document.createElement("th"), { scope: "row" });
    th.appendChild(Object.assign(document.createElement("a"), { href: "#/run/" + f.run_id, textContent: names.get(f.run_id) || "seed " + f.seed }));
    tr.appendChild(th);
    cell(tr, f.value === null ? "no figure" : fmtFigure(f.value), f.value);
  }
  if (!sp.spread) return;
  const foot = table.createTFoot();
  const { mean, std, min, max } = sp.spread;
  for (const [name, text, key, value] of [
    ["mean ± std", fmtFigure(mean) + " ± " + fmtFigure(std), "mean-std", mean + " " + std],
    ["min", fmtFigure(min), "min", min],
    ["max", fmtFigure(max), "max", max],
  ]) {
    const tr = foot.insertRow();
    tr.dataset.stat = key;
    tr.appendChild(Object.assign(document.createElement("th"), { textContent: name, scope: "row" }));
    cell(tr, text, value);
  }
}

// the compare charts: each run's curve, or (seeds of one repeated run, "band" chosen) the mean
// over the seeds with a ±1 std band on the validation charts
function renderCompareCharts() {
  const answer = state.compare;
  if (!answer) return;
  const runs = answer.runs;
  const sp = answer.spread;
  const band = Boolean(sp) && $("cmp-curves-band").checked;
  const allRows = runs.flatMap((run, k) => run.rows.map((r) => ({ ...r, run: k })));
  const labels = runs.map((r) => r.name);
  for (const [id, split, key] of [["cmp-accuracy", "val", "accuracy"], ["cmp-loss", "val", "loss"], ["cmp-train-loss", "train", "loss"]]) {
    const curve = band ? sp.curves.find((c) => c.split === split && c.key === key) : null;
    const el = $(id);
    if (curve) {
      const n = Math.max(...curve.n);
      const lo = curve.mean.map((m, i) => m - curve.std[i]);
      const hi = curve.mean.map((m, i) => m + curve.std[i]);
      plot(id, ["mean of " + n + " seeds", "mean − 1 std", "mean + 1 std"], curve.steps, [curve.mean, lo, hi], {
        styles: [{ stroke: COLORS[0], width: 2 }, { stroke: "#7f93d9", width: 1 }, { stroke: "#7f93d9", width: 1 }],
        bands: [{ series: [3, 2], fill: "rgba(55, 88, 201, 0.18)" }],
      });
      el.dataset.band = "std";
    } else {
      const [xs, ys] = series(allRows, runs.map((_, k) => ({ split, get: (r) => (r.run === k ? r[key] : null) })));
      plot(id, labels, xs, ys);
      delete el.dataset.band;
    }
  }
}

// the Runs page's repeated runs: each group's spread and a link comparing its seeds
async function showRepeats() {
  const groups = await api("GET", "api/repeats");
  const text = JSON.stringify(groups);
  if (state.repeatsJson === text) return; // unchanged: the focus stays where it is
  state.repeatsJson = text;
  $("repeats-box").hidden = groups.length === 0;
  const body = $("repeats-table").tBodies[0];
  body.replaceChildren();
  for (const g of groups) {
    const tr = body.insertRow();
    tr.dataset.repeat = g.name;
    const th = Object.assign(document.createElement("th"), { textContent: g.name, scope: "row" });
    tr.appendChild(th);
    tr.insertCell().textContent = g.recipe;
    tr.insertCell().textContent = g.metric || "";
    Object.assign(tr.insertCell(), { textContent: String(g.seeds.length), className: "num" });
    const s = g.spread;
    Object.assign(tr.insertCell(), { textContent: s ? fmtFigure(s.mean) + " ± " + fmtFigure(s.std) : "", className: "num" });
    Object.assign(tr.insertCell(), { textContent: s ? fmtFigure(s.min) : "", className: "num" });
    Object.assign(tr.insertCell(), { textContent: s ? fmtFigure(s.max) : "", className: "num" });
    const td = tr.insertCell();
    if (g.seeds.length >= 2) {
      td.appendChild(Object.assign(document.createElement("a"), {
        href: "#/compare/" + g.seeds.map((f) => f.run_id).join(","),
        textContent: "Compare the " + g.seeds.length + " seeds of " + g.name,
        className: "compare-group",
      }));
    }
  }
}

// -- routing ----------------------------------------------------------------------------------
const HEADINGS = { runs: "runs-heading", run: "run-heading", compare: "compare-heading", new: "new-heading" };

// navigate = the user went there (a link, Start training): the focus moves to the view's heading
async function route(navigate) {
  showError("");
  stopStream();
  clearInterval(state.runsTimer);
  const hash = location.hash || "#/new";
  const [, view, arg] = hash.split("/");
  for (const el of document.querySelectorAll(".view")) el.hidden = true;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + view);
  try {
    if (view === "runs") {
      $("view-runs").hidden = false;
      await showRuns();
      // statuses change while the list is open: refresh it, keeping the ticks
      state.runsTimer = setInterval(async () => {
        try {
          await showRuns(); // in place: the ticks and the focus stay where they are
        } catch (err) {
          return;
        }
      }, 2000);
    } else if (view === "run" && arg) {
      $("view-run").hidden = false;
      await showRun(arg);
    } else if (view === "compare") {
      $("view-compare").hidden = false;
      await showCompare(arg ? arg.split(",").filter(Boolean) : []);
    } else {
      $("view-new").hidden = false;
    }
  } catch (err) {
    showError(err.message);
  }
  if (navigate) {
    const heading = $(HEADINGS[view === "run" && arg ? "run" : view in HEADINGS ? view : "new"]);
    // a focused element inside the view (the form's first invalid field) keeps the focus
    if (heading && !heading.closest(".view").contains(document.activeElement)) heading.focus();
  }
  refreshQueue();
}

async function refreshQueue() {
  try {
    const h = await api("GET", "health");
    // a status region: written only when it changes (a screen reader repeats each write)
    setText($("queue-info"), h.running + " running, " + h.queued + " queued (at most " + h.max_concurrent + " at once)");
  } catch (err) {
    setText($("queue-info"), "");
  }
}

async function start() {
  try {
    state.options = await api("GET", "api/options");
  } catch (err) {
    showError(err.status === 401 ? "Enter the studio's token." : err.message);
    return;
  }
  buildForm();
  addChartTables();
  route(false);
}

$("token-ok").addEventListener("click", () => {
  state.token = $("token").value.trim();
  $("auth").hidden = true;
  if (!state.options) start();
  else route(false);
});
$("compare-selected").addEventListener("click", () => {
  const ids = [...document.querySelectorAll("#runs-table input:checked")].map((b) => b.value);
  if (ids.length < 2) {
    $("compare-help").textContent = "Compare needs two or more runs: " + (ids.length ? "one is" : "none is") + " ticked.";
    $("compare-help").classList.add("error");
    return;
  }
  $("compare-help").textContent = "Tick two or more runs.";
  $("compare-help").classList.remove("error");
  location.hash = "#/compare/" + ids.join(",");
});
for (const radio of document.querySelectorAll("input[name=cmp-curves]")) radio.addEventListener("change", renderCompareCharts);
$("cancel").addEventListener("click", onCancel);
$("resume").addEventListener("click", onResume);
$("use-model").addEventListener("click", onUseModel);
window.addEventListener("hashchange", () => {
  if (state.options) route(true);
});
start();
