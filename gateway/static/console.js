// The console: submit a task, watch its search live, look at any candidate, browse past operations.
// Plain JavaScript over the gateway's HTTP/JSON API (no build step, no third-party code). Streams are read
// with fetch() rather than EventSource, so that the API key can travel in the Authorization header.
"use strict";

const SIGNALS = [
  ["consistency", "#60a5fa"],
  ["realism", "#f472b6"],
  ["identity", "#34d399"],
];
const $ = (id) => document.getElementById(id);

const state = {
  init: null,          // the init image as a data URL, when this page knows it
  character: null,     // data URL
  maskCanvas: null,    // the mask at the init image's size, white = replace
  maskOriginal: null,  // the mask as loaded, for "reset"
  initImage: null,     // HTMLImageElement of the init image
  operation: null,     // the operation shown (proto3 JSON)
  cards: new Map(),    // candidate id -> {stage, parent, potential, status}
  selected: null,
  watchAbort: null,
  submittedInits: new Map(), // operation name -> init data URL (to show "before" for runs started here)
};

// ---- API -----------------------------------------------------------------------------------------------

function headers(json) {
  const h = {};
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = `Bearer ${key}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method, headers: headers(body !== undefined), body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw apiError(response.status, data);
  return data;
}

function apiError(status, data) {
  const error = (data && data.error) || {};
  const details = (error.details || []).map((d) => {
    if (d.field_violations) return d.field_violations.map((v) => `${v.field}: ${v.description}`).join("; ");
    if (d.reason) return `reason ${d.reason}`;
    return "";
  }).filter(Boolean);
  return new Error(`${status} ${error.status || ""}: ${error.message || "request failed"}` +
    (details.length ? `\n${details.join("\n")}` : ""));
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

async function imageUrl(path) {
  const response = await fetch(path, { headers: headers(false) });
  if (!response.ok) throw apiError(response.status, await response.json().catch(() => ({})));
  return URL.createObjectURL(await response.blob());
}

// Server-sent events over fetch: calls onEvent(name, data) for each event until the stream ends.
async function readEvents(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers(false), signal });
  if (!response.ok) throw apiError(response.status, await response.json().catch(() => ({})));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      let data = "";
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data += line.slice(6);
      }
      if (data) onEvent(name, JSON.parse(data));
    }
  }
}

// ---- Inputs and the mask editor ----------------------------------------------------------------------------

function fileAsDataUrl(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`cannot load image ${url.slice(0, 40)}`));
    image.src = url;
  });
}

const base64Of = (dataUrl) => dataUrl.slice(dataUrl.indexOf(",") + 1);

async function setInit(dataUrl) {
  state.init = dataUrl;
  state.initImage = await loadImage(dataUrl);
  const mask = document.createElement("canvas");
  mask.width = state.initImage.naturalWidth;
  mask.height = state.initImage.naturalHeight;
  const ctx = mask.getContext("2d");
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, mask.width, mask.height);
  state.maskCanvas = mask;
  state.maskOriginal = null;
  drawMaskEditor();
}

async function setMask(dataUrl) {
  if (!state.maskCanvas) throw new Error("load the init image before the mask");
  const image = await loadImage(dataUrl);
  const ctx = state.maskCanvas.getContext("2d");
  ctx.drawImage(image, 0, 0, state.maskCanvas.width, state.maskCanvas.height);
  state.maskOriginal = dataUrl;
  drawMaskEditor();
}

function drawMaskEditor() {
  const view = $("mask-canvas");
  const ctx = view.getContext("2d");
  if (!state.initImage) return;
  view.height = Math.round(view.width * state.initImage.naturalHeight / state.initImage.naturalWidth);
  ctx.drawImage(state.initImage, 0, 0, view.width, view.height);
  ctx.globalAlpha = 0.45;
  ctx.drawImage(tinted(state.maskCanvas, [239, 68, 68]), 0, 0, view.width, view.height);
  ctx.globalAlpha = 1;
}

// The white parts of a mask as a coloured, transparent-elsewhere canvas.
function tinted(mask, rgb) {
  const out = document.createElement("canvas");
  out.width = mask.width;
  out.height = mask.height;
  const source = mask.getContext("2d").getImageData(0, 0, mask.width, mask.height);
  const pixels = source.data;
  for (let i = 0; i < pixels.length; i += 4) {
    const on = pixels[i] >= 128;
    pixels[i] = rgb[0]; pixels[i + 1] = rgb[1]; pixels[i + 2] = rgb[2];
    pixels[i + 3] = on ? 255 : 0;
  }
  out.getContext("2d").putImageData(source, 0, 0);
  return out;
}

function paintAt(event) {
  if (!state.maskCanvas) return;
  const view = $("mask-canvas");
  const box = view.getBoundingClientRect();
  const scale = state.maskCanvas.width / box.width;
  const x = (event.clientX - box.left) * scale;
  const y = (event.clientY - box.top) * scale;
  const erase = document.querySelector("input[name=brush]:checked").value === "erase";
  const ctx = state.maskCanvas.getContext("2d");
  ctx.fillStyle = erase ? "#000" : "#fff";
  ctx.beginPath();
  ctx.arc(x, y, Number($("brush-size").value) * scale / 2, 0, 2 * Math.PI);
  ctx.fill();
  drawMaskEditor();
}

function setUpMaskEditor() {
  const view = $("mask-canvas");
  let painting = false;
  view.addEventListener("pointerdown", (e) => { painting = true; paintAt(e); });
  view.addEventListener("pointermove", (e) => { if (painting) paintAt(e); });
  window.addEventListener("pointerup", () => { painting = false; });
  $("mask-clear").addEventListener("click", () => {
    if (!state.maskCanvas) return;
    const ctx = state.maskCanvas.getContext("2d");
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, state.maskCanvas.width, state.maskCanvas.height);
    drawMaskEditor();
  });
  $("mask-reset").addEventListener("click", () => { if (state.maskOriginal) setMask(state.maskOriginal); });
}

async function useSample() {
  const [init, mask, character] = await Promise.all(
    ["init", "mask", "character"].map(async (name) => fileAsDataUrl(await (await fetch(`samples/${name}.png`)).blob())),
  );
  await setInit(init);
  await setMask(mask);
  state.character = character;
  $("task-id").value = "";
  $("use-sample").dataset.loaded = "true";
}

function settings() {
  const values = {};
  for (const input of document.querySelectorAll("[data-setting]")) {
    if (input.value !== "") values[input.dataset.setting] = Number(input.value);
  }
  if (values.seed !== undefined) values.seed = String(values.seed); // uint64: a string in proto3 JSON
  return values;
}

async function submit() {
  showError(null);
  const request = { settings: settings() };
  const requestId = $("request-id").value.trim();
  if (requestId) request.request_id = requestId;
  const taskId = $("task-id").value.trim();
  if (taskId) {
    request.task_id = taskId;
  } else {
    if (!state.init || !state.character) throw new Error("choose the bundled pair, upload the images, or give a task id");
    request.images = {
      init_image: { data: base64Of(state.init) },
      mask: { data: base64Of(state.maskCanvas.toDataURL("image/png")) },
      character_image: { data: base64Of(state.character) },
    };
  }
  const operation = await api("POST", "/v1/operations:submit", { request, fresh_run: $("fresh-run").checked });
  if (!taskId) state.submittedInits.set(operation.name, state.init);
  await show(operation);
  refreshList();
}

// ---- The run: candidates, chart, detail ---------------------------------------------------------------------

function resetRun(operation) {
  state.operation = operation;
  state.cards = new Map();
  state.selected = null;
  $("stage-global").replaceChildren();
  $("stage-local").replaceChildren();
  $("chart").replaceChildren();
  $("detail").hidden = true;
  $("ledger").textContent = "";
  $("progress").textContent = "";
  $("standin-banner").hidden = true;
  $("op-name").textContent = operation.name;
}

const parentOf = (id) => (id.includes(".") ? id.slice(0, id.lastIndexOf(".")) : "");

function noteCandidate(id, update) {
  const card = state.cards.get(id) || { id, stage: parentOf(id) ? "local" : "global", parent: parentOf(id), potential: null };
  Object.assign(card, update);
  state.cards.set(id, card);
  renderCard(card);
}

function renderCard(card) {
  let element = document.querySelector(`.candidate[data-id="${CSS.escape(card.id)}"]`);
  if (!element) {
    element = document.createElement("div");
    element.className = "candidate";
    element.dataset.id = card.id;
    element.addEventListener("click", () => select(card.id));
    if (card.stage === "local") {
      let family = document.querySelector(`.family[data-parent="${CSS.escape(card.parent)}"]`);
      if (!family) {
        family = document.createElement("div");
        family.className = "family";
        family.dataset.parent = card.parent;
        family.innerHTML = `<span class="badge parent-link"></span><span class="arrow">&rarr;</span>`;
        family.querySelector(".parent-link").textContent = card.parent;
        $("stage-local").append(family);
      }
      family.append(element);
    } else {
      $("stage-global").append(element);
    }
  }
  element.classList.toggle("scored", card.potential !== null);
  element.dataset.live = card.live ? "true" : "false";
  element.dataset.stage = card.stage;
  element.classList.toggle("best", state.operation?.response?.best_candidate_id === card.id);
  element.classList.toggle("selected", state.selected === card.id);
  const potential = card.potential === null ? "…" : card.potential.toFixed(2);
  element.innerHTML = `<div>${card.id}</div><div class="pot">${potential}</div>`;
  if (card.degraded) element.title = "a signal was stood in or fell back";
}

function onProgress(progress) {
  const parts = [progress.kind.replace("PROGRESS_KIND_", "").toLowerCase()];
  if (progress.stage) parts.push(progress.stage);
  parts.push(`${progress.scored}/${progress.planned} scored`, `${Number(progress.elapsed_seconds).toFixed(1)} s`);
  if (progress.detail) parts.push(progress.detail);
  $("progress").textContent = parts.join(" · ");
  $("state").textContent = "RUNNING";
  if (progress.candidate_id && progress.kind === "PROGRESS_KIND_CANDIDATE_GENERATED") noteCandidate(progress.candidate_id, {});
  if (progress.candidate_id && progress.kind === "PROGRESS_KIND_CANDIDATE_SCORED") {
    // `live`: this candidate's score arrived while the search ran (the browser tests read it).
    noteCandidate(progress.candidate_id, { potential: progress.potential ?? null, live: true });
    drawChart();
  }
}

async function show(operation) {
  if (state.watchAbort) state.watchAbort.abort();
  resetRun(operation);
  renderOperation(operation);
  if (operation.done) return;
  const controller = new AbortController();
  state.watchAbort = controller;
  const id = operation.name.slice("operations/".length);
  try {
    await readEvents(`/v1/operations/${id}:watch`, (name, event) => {
      if (name === "progress") onProgress(event.progress);
      else if (name === "queued") $("progress").textContent = `queued, position ${event.queued.queue_position}`;
      else if (name === "done") renderOperation(event.done);
      else if (name === "error") showError(apiError(event.error.code, event));
    }, controller.signal);
  } catch (error) {
    if (error.name !== "AbortError") throw error;
  }
}

function renderOperation(operation) {
  state.operation = operation;
  const stateName = (operation.metadata?.state || "").replace("OPERATION_STATE_", "");
  $("state").textContent = stateName;
  $("state").dataset.state = stateName;
  if (operation.error && operation.error.code) showError(new Error(`${operation.error.reason}: ${operation.error.message}`));
  const response = operation.response;
  if (!response) return;
  const standIn = (response.stand_in_models || []).length > 0;
  $("standin-banner").hidden = !standIn;
  if (standIn) $("standin-banner").title = `stand-ins: ${response.stand_in_models.join(", ")}`;
  for (const candidate of response.candidates || []) {
    noteCandidate(candidate.candidate_id, {
      potential: candidate.potential ?? null,
      degraded: candidate.degraded,
      status: candidate.status,
      scores: candidate.scores || [],
      parent: candidate.parent_id || parentOf(candidate.candidate_id),
    });
  }
  let ledger = {};
  try { ledger = JSON.parse(response.ledger_json || "{}"); } catch { ledger = {}; }
  state.ledger = ledger;
  $("ledger").textContent = JSON.stringify(ledger, null, 2);
  $("progress").textContent = `done: ${(response.candidates || []).length} candidates, best ${response.best_candidate_id}` +
    (response.degraded ? ` (degraded: ${(response.notes || []).join("; ")})` : "");
  drawChart();
}

// A horizontal bar per candidate: its potential split into the three weighted signals; hatched where the
// signal was stood in (a local metric in place of a missing scorer) or fell back to a constant.
function drawChart() {
  const terms = new Map();
  for (const record of state.ledger?.candidates || []) terms.set(record.candidate_id, record.potential_terms || []);
  const cards = [...state.cards.values()].filter((c) => c.potential !== null);
  if (!cards.length) return;
  const row = 20;
  const left = 56;
  const width = 520;
  const max = Math.max(...cards.map((c) => c.potential), 1e-6);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width + left + 60} ${row * cards.length + 30}`);
  svg.id = "chart-svg";
  let defs = `<defs>`;
  for (const [signal, colour] of SIGNALS) {
    defs += `<pattern id="hatch-${signal}" width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
      `<rect width="6" height="6" fill="${colour}" opacity="0.35"/><line x1="0" y1="0" x2="0" y2="6" stroke="${colour}" stroke-width="3"/></pattern>`;
  }
  svg.innerHTML = `${defs}</defs>`;
  cards.forEach((card, i) => {
    const y = i * row;
    const label = document.createElementNS(ns, "text");
    label.setAttribute("x", 0); label.setAttribute("y", y + 14); label.textContent = card.id;
    svg.append(label);
    let x = left;
    const parts = terms.get(card.id);
    if (parts && parts.length) {
      for (const term of parts) {
        const colour = (SIGNALS.find(([s]) => s === term.signal) || [null, "#94a3b8"])[1];
        const w = Math.max(0, term.weight * term.value / max * width);
        const rect = document.createElementNS(ns, "rect");
        const standIn = term.stood_in || term.fallback;
        rect.setAttribute("x", x); rect.setAttribute("y", y + 3); rect.setAttribute("width", w); rect.setAttribute("height", row - 6);
        rect.setAttribute("fill", standIn ? `url(#hatch-${term.signal})` : colour);
        rect.setAttribute("class", `term term-${term.signal}${standIn ? " stood-in" : ""}`);
        const title = document.createElementNS(ns, "title");
        title.textContent = `${term.signal}: ${term.weight} × ${Number(term.value).toFixed(2)} from ${term.source}` +
          (term.stood_in ? ` (stood in by ${term.source_signal})` : "") + (term.fallback ? " (fallback)" : "");
        rect.append(title);
        svg.append(rect);
        x += w;
      }
    } else {
      const rect = document.createElementNS(ns, "rect");
      rect.setAttribute("x", x); rect.setAttribute("y", y + 3); rect.setAttribute("height", row - 6);
      rect.setAttribute("width", card.potential / max * width); rect.setAttribute("fill", "#cbd5e1");
      svg.append(rect);
      x += card.potential / max * width;
    }
    const value = document.createElementNS(ns, "text");
    value.setAttribute("x", x + 4); value.setAttribute("y", y + 14); value.textContent = card.potential.toFixed(2);
    svg.append(value);
  });
  const legendY = row * cards.length + 22;
  SIGNALS.forEach(([signal, colour], i) => {
    const x = left + i * 150;
    svg.insertAdjacentHTML("beforeend",
      `<rect x="${x}" y="${legendY - 10}" width="12" height="12" fill="${colour}"/><text x="${x + 16}" y="${legendY}">${signal}</text>`);
  });
  svg.insertAdjacentHTML("beforeend",
    `<rect x="${left + 450}" y="${legendY - 10}" width="12" height="12" fill="url(#hatch-realism)"/><text x="${left + 466}" y="${legendY}">stood in</text>`);
  $("chart").replaceChildren(svg);
}

async function select(id) {
  state.selected = id;
  for (const card of state.cards.values()) renderCard(card);
  const operation = state.operation;
  const response = operation?.response;
  $("detail").hidden = false;
  $("detail-id").textContent = id + (response?.best_candidate_id === id ? " (best)" : "");
  $("detail-standin").hidden = !(response?.stand_in_models || []).length;
  const scores = state.cards.get(id)?.scores || [];
  $("scores").innerHTML = "<tr><th>signal</th><th>value</th><th>source</th><th>fallback</th></tr>" +
    scores.map((s) => `<tr><td>${s.signal}</td><td>${Number(s.value).toFixed(2)}</td><td>${s.source}</td>` +
      `<td>${s.fallback ? "yes: " + (s.reason || "") : ""}</td></tr>`).join("");
  if (!operation?.done) {
    $("detail-id").textContent = `${id} (images once the operation is done)`;
    return;
  }
  const name = operation.name.slice("operations/".length);
  const after = await imageUrl(`/v1/operations/${name}/candidates/${encodeURIComponent(id)}?alt=media`);
  const init = state.submittedInits.get(operation.name) || state.init;
  $("after-img").src = after;
  $("before-img").src = init || after;
  $("before-img").dataset.known = init ? "true" : "false";
  // The API does not return a task's inputs: the init image is known only for tasks submitted from this page.
  $("before-caption").textContent = init ? "before (init)" : "before: init image not known here";
  setSlider();
  const mask = response.refined_mask?.data ? await loadImage(`data:image/png;base64,${response.refined_mask.data}`) : null;
  const candidate = await loadImage(after);
  drawFaceCrop(candidate, mask);
  drawRefinedMask(init ? await loadImage(init) : candidate, mask);
}

// The init image on the left of the slider, the candidate on its right.
function setSlider() {
  $("before-clip").style.width = `${$("slider").value}%`;
  // The clipped layer keeps the full image's width, so that both layers line up.
  $("before-img").style.width = `${$("before-after").clientWidth}px`;
}

// The mask's bounding box (white pixels), grown by a margin; the whole image when there is no mask.
function maskBox(mask, width, height) {
  if (!mask) return { x: 0, y: 0, w: width, h: height };
  const canvas = document.createElement("canvas");
  canvas.width = width; canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(mask, 0, 0, width, height);
  const pixels = ctx.getImageData(0, 0, width, height).data;
  let x0 = width, y0 = height, x1 = 0, y1 = 0;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (pixels[(y * width + x) * 4] >= 128) {
        x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < x0) return { x: 0, y: 0, w: width, h: height };
  const side = Math.max(x1 - x0, y1 - y0) * 1.3;
  const cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  return { x: Math.max(0, cx - side / 2), y: Math.max(0, cy - side / 2), w: side, h: side };
}

function drawFaceCrop(candidate, mask) {
  const box = maskBox(mask, candidate.naturalWidth, candidate.naturalHeight);
  const ctx = $("face-crop").getContext("2d");
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(candidate, box.x, box.y, box.w, box.h, 0, 0, 256, 256);
}

function drawRefinedMask(base, mask) {
  const canvas = $("refined-mask");
  const ctx = canvas.getContext("2d");
  canvas.height = Math.round(256 * base.naturalHeight / base.naturalWidth);
  ctx.drawImage(base, 0, 0, canvas.width, canvas.height);
  if (!mask) return;
  const full = document.createElement("canvas");
  full.width = mask.naturalWidth; full.height = mask.naturalHeight;
  full.getContext("2d").drawImage(mask, 0, 0);
  ctx.globalAlpha = 0.45;
  ctx.drawImage(tinted(full, [239, 68, 68]), 0, 0, canvas.width, canvas.height);
  ctx.globalAlpha = 1;
}

// ---- Past operations ------------------------------------------------------------------------------------

async function refreshList() {
  try {
    const listed = await api("GET", "/v1/operations?page_size=20");
    const body = $("operations").querySelector("tbody");
    body.replaceChildren();
    for (const operation of listed.operations || []) {
      const tr = document.createElement("tr");
      tr.className = "operation-row";
      const stateName = (operation.metadata?.state || "").replace("OPERATION_STATE_", "");
      const standIn = (operation.response?.stand_in_models || []).length > 0;
      tr.innerHTML = `<td></td><td>${stateName}</td><td>${operation.response?.best_candidate_id || ""}</td><td></td>`;
      tr.children[0].textContent = operation.name.slice("operations/".length);
      if (standIn) tr.children[0].insertAdjacentHTML("beforeend", ` <span class="badge standin-badge">stand-in</span>`);
      const open = document.createElement("button");
      open.textContent = "open";
      open.addEventListener("click", () => guarded(() => show(operation)));
      tr.children[3].append(open);
      body.append(tr);
    }
  } catch (error) {
    showError(error);
  }
}

async function guarded(action) {
  try { showError(null); await action(); } catch (error) { showError(error); }
}

function init() {
  $("api-key").value = sessionStorage.getItem("inpaint-api-key") || "";
  $("api-key").addEventListener("change", () => { sessionStorage.setItem("inpaint-api-key", $("api-key").value); refreshList(); });
  setUpMaskEditor();
  $("use-sample").addEventListener("click", () => guarded(useSample));
  $("file-init").addEventListener("change", (e) => guarded(async () => setInit(await fileAsDataUrl(e.target.files[0]))));
  $("file-mask").addEventListener("change", (e) => guarded(async () => setMask(await fileAsDataUrl(e.target.files[0]))));
  $("file-character").addEventListener("change", (e) => guarded(async () => { state.character = await fileAsDataUrl(e.target.files[0]); }));
  $("submit").addEventListener("click", () => guarded(submit));
  $("refresh").addEventListener("click", () => guarded(refreshList));
  $("slider").addEventListener("input", setSlider);
  refreshList();
}

init();
