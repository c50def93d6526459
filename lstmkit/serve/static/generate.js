// lstmkit text generation page: POSTs to v1/generate with stream: true on this server (relative
// to the page) and appends the text as its Server-Sent Events arrive. No external resources.
"use strict";

const state = { needsToken: false, busy: false, info: null };
const $ = (id) => document.getElementById(id);

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = state.needsToken ? $("token").value.trim() : "";
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function failure(response) {
  if (response.status === 401) {
    state.needsToken = true;
    $("auth").hidden = false;
  }
  let detail = null;
  try {
    detail = (await response.json()).detail;
  } catch (err) {
    detail = null;
  }
  if (Array.isArray(detail)) detail = detail.map((d) => (d.loc ? d.loc[d.loc.length - 1] + ": " : "") + d.msg).join("; ");
  const error = new Error(detail || response.status + " " + response.statusText);
  error.status = response.status;
  return error;
}

function showError(message) {
  $("error").textContent = message || "";
  $("error").hidden = !message;
  $("prime").setAttribute("aria-invalid", message ? "true" : "false");
}

async function loadModel() {
  try {
    const response = await fetch("v1/model", { headers: headers() });
    if (!response.ok) throw await failure(response);
    const info = await response.json();
    state.info = info;
    const m = info.model;
    $("model-info").textContent = (info.name ? info.name + ": " : "") + "character " +
      String(m.cell || "lstm").toUpperCase() + " (" + m.hidden_size + " units), " +
      info.chars.length + " characters";
    $("prime-help").textContent = "Only characters the model knows; at most " + info.max_chars +
      " of them. Up to " + info.max_length + " characters are generated.";
    $("length").max = String(info.max_length);
    if (!$("prime").value) $("prime").value = info.chars.includes("T") ? "T" : info.chars.trim().charAt(0) || info.chars.charAt(0);
  } catch (err) {
    $("model-info").textContent = err.status === 401 ? "Enter the server's token to use the model." : String(err.message);
  }
}

function numberOr(id, fallback) {
  const v = $(id).value.trim();
  return v === "" ? fallback : Number(v);
}

async function generate(event) {
  event.preventDefault();
  if (state.busy) return;
  state.busy = true;
  $("go").setAttribute("aria-disabled", "true");
  const body = {
    prime: $("prime").value,
    length: numberOr("length", 300),
    temperature: numberOr("temperature", 1),
    top_k: numberOr("top-k", null),
    seed: numberOr("seed", null),
    stream: true,
  };
  $("announce").textContent = "Generating\u2026";
  let count = 0;
  try {
    const response = await fetch("v1/generate", { method: "POST", headers: headers(), body: JSON.stringify(body) });
    if (!response.ok) throw await failure(response);
    showError("");
    $("prime-out").textContent = body.prime;
    $("gen-out").textContent = "";
    $("seed-note").textContent = "";
    $("result").hidden = false;
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const line = buffer.slice(0, cut).replace(/^data: /, "");
        buffer = buffer.slice(cut + 2);
        if (line === "[DONE]") continue;
        const event = JSON.parse(line);
        if (event.text !== undefined) {
          $("gen-out").textContent += event.text;
          count += event.text.length;
        } else if (event.done) {
          $("seed-note").textContent = "Seed " + event.seed + ": the same seed and settings give the same text.";
        }
      }
    }
    $("announce").textContent = "Done: " + count + " characters generated.";
  } catch (err) {
    showError(String(err.message));
    $("announce").textContent = "";
    $("prime").focus();
  } finally {
    state.busy = false;
    $("go").removeAttribute("aria-disabled");
  }
}

$("form").addEventListener("submit", generate);
$("token").addEventListener("change", loadModel);
loadModel();
