// The create page: the form (POST /v1/videos, or /remix), and "Your queue" with live progress.

import { api, ApiError } from "./api.js";
import { ideasFor } from "./ideas.js";
import { jobCard } from "./jobcard.js";
import { $, formatSeconds, h, isTerminal, showError, toast } from "./ui.js";

const form = $("#create-form");
const fields = {
  prompt: $("#prompt"),
  model: $("#model"),
  seconds: $("#seconds"),
  size: $("#size"),
  seed: $("#seed"),
  steps: $("#steps"),
  guidance_scale: $("#guidance_scale"),
  negative_prompt: $("#negative_prompt"),
  speed_preset: $("#speed_preset"),
  input_reference: $("#dropzone"),
  n: $("#n-1"),
};
const ADVANCED = new Set(["steps", "guidance_scale", "negative_prompt"]);
const LAST_MODEL_KEY = "reelgen.studio.model";
const QUEUE_FINISHED_SHOWN = 6;

let models = [];
let image = null; // the reference image File, if any
let remixSource = null; // the Video being remixed, if any
const cards = new Map(); // video id -> {el, stop, video}

// --- models, sizes, durations --------------------------------------------------------------------------

function currentModel() {
  return models.find((m) => m.id === fields.model.value) || null;
}

function orientation(size) {
  const [w, hgt] = size.split("x").map(Number);
  return w > hgt ? "Landscape" : w < hgt ? "Portrait" : "Square";
}

function fillSizes(model, wanted) {
  const keep = wanted || fields.size.value;
  const groups = new Map();
  for (const size of model.sizes) {
    const group = orientation(size);
    if (!groups.has(group)) groups.set(group, h("optgroup", { label: group }));
    const [w, hgt] = size.split("x");
    groups.get(group).append(h("option", { value: size }, `${w} × ${hgt}`));
  }
  fields.size.replaceChildren(...groups.values());
  fields.size.value = model.sizes.includes(keep) ? keep : model.default_size;
}

function fillSeconds(model, wanted) {
  const keep = Number(wanted ?? fields.seconds.value);
  const values = model.seconds.map(Number);
  // A recipe from elsewhere (a remix of a 0.5 s video) keeps its exact duration.
  if (wanted !== undefined && Number.isFinite(keep) && !values.includes(keep) && keep > 0) values.push(keep);
  values.sort((a, b) => a - b);
  fields.seconds.replaceChildren(...values.map((s) => h("option", { value: String(s) }, formatSeconds(s))));
  const pick = values.includes(keep) ? keep : values.includes(model.default_seconds) ? model.default_seconds : values[0];
  fields.seconds.value = String(pick);
}

function describeModel(model) {
  const input = model.inputs.includes("image") ? "Text or image to video" : "Text to video";
  const bits = [input, `up to ${formatSeconds(model.max_seconds)}`, `${model.sizes.length} sizes`, `${model.fps} fps`];
  let text = `${bits.join(" · ")}. ${model.description}`;
  if (!model.runnable) text += ` Cannot run on this server right now: ${model.runnable_reason}.`;
  return text;
}

function presetSteps(model, preset) {
  if (preset === "draft") return Math.max(1, Math.round(model.default_steps / 2));
  if (preset === "quality") return Math.min(model.max_steps, model.default_steps * 2);
  return null;
}

function applyModel(wanted = {}) {
  const model = currentModel();
  if (!model) return;
  $("#model-caps").textContent = describeModel(model);
  // A closed-vocabulary model (reelgen-demo) says what it can draw, so nobody expects a cat.
  $("#model-vocab").hidden = !model.vocabulary;
  $("#model-vocab-words").textContent = model.vocabulary ? model.vocabulary.join(" · ") : "";
  fillSizes(model, wanted.size);
  fillSeconds(model, wanted.seconds);
  fields.steps.placeholder = `${model.default_steps} (default)`;
  $("#steps-hint").textContent = `1 to ${model.max_steps}; more is slower and finer`;
  const preset = $("#preset").value;
  if (preset !== "custom" && preset !== "standard") fields.steps.value = presetSteps(model, preset);
  $("#image-caps").textContent = model.inputs.includes("image")
    ? `${model.id} can start from your image.`
    : `${model.id} works from text only; a reference image needs a model with image input.`;
  $("#ideas").replaceChildren(
    ...ideasFor(model).map((idea) =>
      h("li", {}, h("button", { type: "button", class: "chip", onclick: () => useIdea(idea) }, idea)),
    ),
  );
}

function useIdea(idea) {
  fields.prompt.value = idea;
  fields.prompt.dispatchEvent(new Event("input"));
  fields.prompt.focus();
}

async function loadModels() {
  try {
    models = await api.models();
  } catch (err) {
    showError($("#model-error"), `Could not load models: ${err.message}`);
    return;
  }
  // Models that can run here first; the others are listed (so people know they exist) but cannot be picked.
  const ready = models.filter((m) => m.runnable);
  const elsewhere = models.filter((m) => !m.runnable);
  const option = (m) =>
    h("option", { value: m.id, disabled: !m.runnable, title: m.runnable ? m.description : m.runnable_reason }, m.id);
  const groups = [h("optgroup", { label: "Ready on this server" }, ...ready.map(option))];
  if (elsewhere.length) groups.push(h("optgroup", { label: "Not available here" }, ...elsewhere.map(option)));
  fields.model.replaceChildren(...groups);
  const remembered = localStorage.getItem(LAST_MODEL_KEY);
  const preferred = ready.find((m) => m.id === remembered) || ready[0] || models[0] || null;
  if (preferred) fields.model.value = preferred.id;
  applyModel();
}

// --- the reference image ---------------------------------------------------------------------------------

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/webp"];

function setImage(file) {
  clearFieldError("input_reference");
  if (image) URL.revokeObjectURL($("#image-thumb").src);
  image = file;
  $("#image-preview").hidden = !file;
  $("#dropzone").hidden = Boolean(file);
  if (!file) return;
  $("#image-thumb").src = URL.createObjectURL(file);
  $("#image-name").textContent = `${file.name || "pasted image"} · ${Math.max(1, Math.round(file.size / 1024))} KB`;
  if (file.type && !IMAGE_TYPES.includes(file.type)) {
    fieldError("input_reference", "Use a PNG, JPEG or WebP image.");
  }
}

function imageFrom(items) {
  for (const item of items || []) {
    const file = item instanceof File ? item : item.kind === "file" ? item.getAsFile() : null;
    if (file && file.type.startsWith("image/")) return file;
  }
  return null;
}

function setupImageInput() {
  const zone = $("#dropzone");
  const input = $("#image-file");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      input.click();
    }
  });
  input.addEventListener("change", () => {
    if (input.files && input.files[0]) setImage(input.files[0]);
    input.value = "";
  });
  for (const kind of ["dragenter", "dragover"]) {
    zone.addEventListener(kind, (event) => {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  }
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    const file = imageFrom(event.dataTransfer.files) || imageFrom(event.dataTransfer.items);
    if (file) setImage(file);
    else fieldError("input_reference", "That was not an image file.");
  });
  document.addEventListener("paste", (event) => {
    const file = imageFrom(event.clipboardData && event.clipboardData.items);
    if (file) {
      event.preventDefault();
      setImage(file);
      toast("Image pasted as the reference image");
    }
  });
  $("#image-clear").addEventListener("click", () => {
    setImage(null);
    $("#dropzone").focus();
  });
}

// --- errors next to their fields ---------------------------------------------------------------------------

function fieldFor(param) {
  if (!param) return null;
  const name = param.split("[")[0];
  return name in fields ? name : null;
}

function fieldError(name, message) {
  const box = document.getElementById(`${name}-error`);
  showError(box, message);
  const control = fields[name];
  if (control) control.setAttribute("aria-invalid", "true");
  box?.closest(".field")?.classList.add("invalid");
}

function clearFieldError(name) {
  const box = document.getElementById(`${name}-error`);
  showError(box, "");
  fields[name]?.removeAttribute("aria-invalid");
  box?.closest(".field")?.classList.remove("invalid");
}

function clearErrors() {
  for (const name of Object.keys(fields)) clearFieldError(name);
  showError($("#form-error"), "");
}

function showApiError(err) {
  let name = err instanceof ApiError ? fieldFor(err.param) : null;
  if (!name && err instanceof ApiError && err.status === 413 && image) name = "input_reference";
  if (!name) {
    showError($("#form-error"), err.message);
    return;
  }
  if (ADVANCED.has(name)) $("#advanced").open = true;
  fieldError(name, err.message);
  const control = name === "input_reference" && image ? $("#image-clear") : fields[name];
  control.focus();
  control.scrollIntoView?.({ block: "center", behavior: "smooth" });
}

// --- submit ------------------------------------------------------------------------------------------------

function numberOrText(text) {
  const value = text.trim();
  if (!value) return undefined;
  const n = Number(value);
  // Send what the person typed when it is not a plain number (or too big for JS), so the API says what is wrong.
  return Number.isFinite(n) && (Number.isSafeInteger(n) || !/^\d+$/.test(value)) ? n : value;
}

function collect() {
  const body = {
    prompt: fields.prompt.value,
    model: fields.model.value || undefined,
    seconds: fields.seconds.value || undefined,
    size: fields.size.value || undefined,
    n: Number(form.elements.n.value),
    seed: numberOrText(fields.seed.value),
    steps: numberOrText(fields.steps.value),
    guidance_scale: numberOrText(fields.guidance_scale.value),
    negative_prompt: fields.negative_prompt.value.trim() || undefined,
    // The API's speed preset (step caches); the "#preset" select above only picks a step count.
    preset: fields.speed_preset.value || undefined,
  };
  for (const key of Object.keys(body)) if (body[key] === undefined) delete body[key];
  return body;
}

/** A remix keeps the source's recipe: when only the prompt changed, ask the API for exactly that. */
function onlyPromptChanged(body, source) {
  const p = source.params;
  const same = (a, b) => a !== undefined && (Number(a) === Number(b) || a === b);
  return (
    body.model === p.model &&
    Number(body.seconds) === Number(p.seconds) &&
    body.size === p.size &&
    body.n === p.n &&
    same(body.seed, p.seed) &&
    same(body.steps, p.steps) &&
    same(body.guidance_scale, p.guidance_scale) &&
    (body.negative_prompt || "") === (p.negative_prompt || "") &&
    (body.preset === undefined || body.preset === p.preset) &&
    !image
  );
}

async function submit(event) {
  event?.preventDefault();
  const button = $("#submit");
  if (button.disabled) return;
  clearErrors();
  const body = collect();
  button.disabled = true;
  button.textContent = "Sending…";
  try {
    const video =
      remixSource && onlyPromptChanged(body, remixSource)
        ? await api.remix(remixSource.id, body.prompt)
        : await api.create(body, image);
    localStorage.setItem(LAST_MODEL_KEY, video.model);
    addCard(video, { prepend: true });
    toast(video.queue_position ? `Queued: ${video.queue_position} in line` : "Queued");
  } catch (err) {
    showApiError(err);
  } finally {
    button.disabled = false;
    button.textContent = "Generate";
  }
}

// --- the queue ---------------------------------------------------------------------------------------------

function updateQueueEmpty() {
  $("#queue-empty").hidden = cards.size > 0;
}

function trimFinished() {
  const finished = [...$("#jobs").children].filter((li) => ["completed", "failed", "cancelled"].includes(li.dataset.status));
  for (const li of finished.slice(QUEUE_FINISHED_SHOWN)) {
    cards.get(li.dataset.id)?.stop();
    cards.delete(li.dataset.id);
    li.remove();
  }
}

function addCard(video, { prepend = false } = {}) {
  if (cards.has(video.id)) return;
  const card = jobCard(video, { onChange: () => requestAnimationFrame(trimFinished) });
  cards.set(video.id, card);
  if (prepend) $("#jobs").prepend(card.el);
  else $("#jobs").append(card.el);
  updateQueueEmpty();
  if (prepend && window.matchMedia("(max-width: 860px)").matches) card.el.scrollIntoView({ block: "nearest" });
}

async function loadQueue() {
  try {
    const page = await api.list({ limit: 20 });
    // Everything still running (it goes on when the tab is closed), then the latest finished ones.
    let finished = 0;
    for (const video of page.data) {
      if (!isTerminal(video) || finished++ < QUEUE_FINISHED_SHOWN) addCard(video);
    }
  } catch (err) {
    showError($("#form-error"), `Could not load your videos: ${err.message}`);
  }
  updateQueueEmpty();
}

// --- remix: the form prefilled from a video's recipe --------------------------------------------------------

async function prefillRemix(id) {
  let source;
  try {
    source = await api.get(id);
  } catch (err) {
    showError($("#form-error"), `Cannot remix ${id}: ${err.message}`);
    return;
  }
  remixSource = source;
  const p = source.params;
  if (models.some((m) => m.id === p.model)) fields.model.value = p.model;
  applyModel({ size: p.size, seconds: p.seconds });
  fields.prompt.value = p.prompt;
  form.elements.n.value = String(p.n);
  fields.seed.value = String(p.seed);
  fields.steps.value = String(p.steps);
  $("#preset").value = "custom";
  fields.guidance_scale.value = String(p.guidance_scale);
  fields.negative_prompt.value = p.negative_prompt || "";
  fields.speed_preset.value = p.preset || "";
  fields.prompt.dispatchEvent(new Event("input"));
  const banner = $("#remix-banner");
  banner.replaceChildren(
    h("span", {}, h("strong", {}, "Remixing "),
    h("a", { href: `/library/${encodeURIComponent(source.id)}` }, `“${truncate(p.prompt, 60)}”`),
    h("span", {}, ". Change the prompt to keep everything else, seed included"),
    p.input_image ? h("span", {}, " (and its reference image)") : null,
    h("span", {}, ". "),
    h("a", { href: "/" }, "Start from scratch")),
  );
  banner.hidden = false;
  fields.prompt.focus();
  fields.prompt.select();
}

function truncate(text, n) {
  return text.length > n ? `${text.slice(0, n - 1)}…` : text;
}

// --- wiring ------------------------------------------------------------------------------------------------

function setup() {
  form.addEventListener("submit", submit);
  form.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) submit(event);
  });
  fields.model.addEventListener("change", () => {
    clearFieldError("model");
    applyModel();
  });
  for (const [name, control] of Object.entries(fields)) {
    control.addEventListener("input", () => clearFieldError(name));
    control.addEventListener("change", () => clearFieldError(name));
  }
  form.addEventListener("change", (event) => {
    if (event.target.name === "n") clearFieldError("n");
  });
  fields.prompt.addEventListener("input", () => {
    const n = fields.prompt.value.length;
    $("#prompt-count").textContent = n ? `${n} characters` : "";
  });
  $("#seed-dice").addEventListener("click", () => {
    fields.seed.value = String(Math.floor(Math.random() * 2 ** 31));
    clearFieldError("seed");
  });
  $("#preset").addEventListener("change", () => {
    const model = currentModel();
    const preset = $("#preset").value;
    if (!model || preset === "custom") return;
    const steps = presetSteps(model, preset);
    fields.steps.value = steps === null ? "" : String(steps);
    clearFieldError("steps");
  });
  fields.steps.addEventListener("input", () => {
    $("#preset").value = fields.steps.value.trim() ? "custom" : "standard";
  });
  setupImageInput();
}

async function main() {
  setup();
  await loadModels();
  const remix = new URLSearchParams(location.search).get("remix");
  if (remix) await prefillRemix(remix);
  else fields.prompt.focus({ preventScroll: true });
  await loadQueue();
  document.body.dataset.ready = "true";
}

main();
