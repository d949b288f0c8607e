// The page at /: every installed task works the same way, through the contract. The picture comes from
// POST /predict?draw=1 (the task's own Prediction.draw), the numbers from POST /predict (its to_json),
// and the task's prediction options from GET /model. Nothing here knows a task.
"use strict";

const $ = (id) => document.getElementById(id);
const KEY_STORE = "zoo-serve-api-key";
let model = null;

function headers() {
  const key = $("api-key").value.trim();
  return key ? { "X-API-Key": key } : {};
}

function status(text, bad) {
  $("status").textContent = text;
  $("status").style.color = bad ? "var(--bad)" : "";
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON */ }
  return `HTTP ${response.status}`;
}

async function loadModel() {
  const response = await fetch("/model", { headers: headers() });
  if (!response.ok) {
    const why = await errorText(response);
    status(response.status === 401 ? "This server asks for an API key: type it above." : why, true);
    $("model-summary").textContent = "model facts need the API key";
    return;
  }
  model = await response.json();
  status("");
  $("model-name").textContent = model.model;
  const classes = model.classes ? `, ${model.classes.length} classes` : "";
  const best = model.metrics ? Object.entries(model.metrics).filter(([k]) => k !== "epoch")
    .map(([k, v]) => `${k} ${formatNumber(v)}`).join(", ") : "";
  $("model-summary").textContent = `task ${model.task}${classes}; ${model.backbone || ""}${model.head ? " + " + model.head : ""}` +
    `${best ? "; validation: " + best : ""}; zoo ${model.zoo_version}`;
  $("model-facts").textContent = JSON.stringify(model, null, 2);
  buildOptions(model.predict_options || []);
}

function buildOptions(options) {
  const form = $("options");
  form.replaceChildren();
  for (const o of options) {
    const label = document.createElement("label");
    label.title = o.help || "";
    label.append(o.name.replace(/_/g, " "));
    let input;
    if (o.choices) {
      input = document.createElement("select");
      for (const c of o.choices) input.add(new Option(c, c, false, c === o.default));
    } else {
      input = document.createElement("input");
      if (o.type === "bool") { input.type = "checkbox"; input.checked = !!o.default; }
      else {
        input.type = o.type === "int" || o.type === "float" ? "number" : "text";
        if (o.type === "float") input.step = "any";
        if (o.min !== undefined) input.min = o.min;
        if (o.max !== undefined) input.max = o.max;
        input.value = o.default ?? "";
      }
    }
    input.name = o.name;
    label.append(input);
    form.append(label);
  }
}

function query(draw) {
  const params = new URLSearchParams();
  for (const input of $("options").elements) {
    const value = input.type === "checkbox" ? String(input.checked) : input.value;
    if (value !== "") params.set(input.name, value);
  }
  if (draw) params.set("draw", "1");
  const text = params.toString();
  return text ? "?" + text : "";
}

function formatNumber(v) {
  if (typeof v !== "number") return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 1000 ? v.toFixed(1) : String(Number(v.toPrecision(4)));
}

// Any JSON, readably: objects as key/value tables, lists of records as tables, short lists inline.
function render(value, depth = 0) {
  if (value === null || value === undefined) return document.createTextNode("—");
  if (typeof value !== "object") {
    const span = document.createElement("span");
    span.textContent = typeof value === "number" ? formatNumber(value) : String(value);
    if (typeof value === "number") span.className = "num";
    return span;
  }
  if (Array.isArray(value)) {
    const records = value.length && value.every((x) => x && typeof x === "object" && !Array.isArray(x));
    if (records && depth < 3) {
      const keys = [...new Set(value.flatMap(Object.keys))];
      const table = document.createElement("table");
      const head = table.insertRow();
      for (const k of keys) { const th = document.createElement("th"); th.textContent = k; head.append(th); }
      for (const row of value.slice(0, 50)) {
        const tr = table.insertRow();
        for (const k of keys) tr.insertCell().append(render(row[k], depth + 1));
      }
      if (value.length > 50) table.insertRow().insertCell().textContent = `… ${value.length - 50} more`;
      return table;
    }
    const flat = value.flat(Infinity);
    const shown = flat.slice(0, 12).map(formatNumber).join(", ");
    const span = document.createElement("span");
    span.className = "num";
    span.textContent = value.length === flat.length
      ? `[${shown}${flat.length > 12 ? `, … (${flat.length})` : ""}]`
      : `${flat.length} numbers: [${shown}${flat.length > 12 ? ", …" : ""}]`;
    return span;
  }
  const table = document.createElement("table");
  for (const [k, v] of Object.entries(value)) {
    const tr = table.insertRow();
    const th = document.createElement("th");
    th.textContent = k;
    tr.append(th);
    tr.insertCell().append(render(v, depth + 1));
  }
  return table;
}

async function predict(file) {
  const card = document.createElement("article");
  card.className = "card";
  const title = document.createElement("h2");
  title.textContent = file.name;
  const picture = document.createElement("div");
  const numbers = document.createElement("div");
  numbers.className = "numbers";
  numbers.textContent = "predicting…";
  card.append(title, picture, numbers);
  $("results").prepend(card);

  const send = (draw) => {
    const body = new FormData();
    body.append("file", file, file.name);
    return fetch("/predict" + query(draw), { method: "POST", body, headers: headers() });
  };
  try {
    const answer = await send(false);
    if (!answer.ok) throw new Error(await errorText(answer));
    const record = (await answer.json())[0];
    const { image, ...prediction } = record;
    numbers.replaceChildren(render(prediction));
    const raw = document.createElement("details");
    raw.innerHTML = "<summary>JSON</summary>";
    const pre = document.createElement("pre");
    pre.textContent = JSON.stringify(record, null, 2);
    raw.append(pre);
    numbers.append(raw);
    card.dataset.state = "predicted";

    const drawn = await send(true);
    if (!drawn.ok) throw new Error(await errorText(drawn));
    const img = document.createElement("img");
    img.alt = `${file.name} with its prediction drawn`;
    img.className = "drawn";
    img.src = URL.createObjectURL(await drawn.blob());
    await new Promise((resolve) => { img.onload = img.onerror = resolve; });
    picture.append(img);
    card.dataset.state = "done";
  } catch (e) {
    card.classList.add("failed");
    card.dataset.state = "error";
    numbers.replaceChildren();
    const p = document.createElement("p");
    p.className = "error";
    p.textContent = e.message || String(e);
    card.append(p);
  }
}

function accept(files) {
  for (const file of files) predict(file);
}

$("api-key").value = localStorage.getItem(KEY_STORE) || "";
$("api-key").addEventListener("change", () => {
  localStorage.setItem(KEY_STORE, $("api-key").value.trim());
  loadModel();
});
$("files").addEventListener("change", (e) => { accept(e.target.files); e.target.value = ""; });
const drop = $("drop");
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); accept(e.dataTransfer.files); });
$("show-model").addEventListener("click", (e) => { e.preventDefault(); $("model-facts").hidden = !$("model-facts").hidden; });
$("options").addEventListener("submit", (e) => e.preventDefault());
loadModel();
