// Small DOM and formatting helpers shared by the studio's pages.

/** Build an element: h("a", {href: "/", class: "x", onclick: fn}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

export const TERMINAL = new Set(["completed", "failed", "cancelled"]);

export function isTerminal(video) {
  return TERMINAL.has(video.status);
}

/** "8 s", "2 min", "1 h 5 min". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  if (seconds < 0.95) return "under 1 s";
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export function formatAgo(unixSeconds) {
  const delta = Date.now() / 1000 - unixSeconds;
  if (delta < 45) return "just now";
  if (delta < 3600) return `${Math.round(delta / 60)} min ago`;
  if (delta < 86400) return `${Math.round(delta / 3600)} h ago`;
  if (delta < 7 * 86400) return `${Math.round(delta / 86400)} d ago`;
  return new Date(unixSeconds * 1000).toLocaleDateString();
}

export function formatDate(unixSeconds) {
  return new Date(unixSeconds * 1000).toLocaleString();
}

export function ordinal(n) {
  const rem100 = n % 100;
  if (rem100 >= 11 && rem100 <= 13) return `${n}th`;
  return `${n}${{ 1: "st", 2: "nd", 3: "rd" }[n % 10] || "th"}`;
}

export function formatSize(size) {
  return String(size).replace("x", "×");
}

export function formatSeconds(seconds) {
  const n = Number(seconds);
  return `${Number.isFinite(n) ? +n.toFixed(2) : seconds} s`;
}

export const STATUS_LABELS = {
  queued: "Queued",
  in_progress: "Generating",
  completed: "Ready",
  failed: "Failed",
  cancelled: "Cancelled",
};

/** A short, human summary of where a video is. `live` carries step/total/eta from an event stream. */
export function describe(video, live = {}) {
  if (video.status === "queued" && video.review && video.review.state === "held") {
    // Flagged by the prompt check: it waits for a moderator, not for a worker.
    return `Held for review: ${video.review.reason || "a moderator will look at it"}`;
  }
  const parts = [STATUS_LABELS[video.status] || video.status];
  if (video.status === "queued") {
    if (video.queue_position) parts.push(`${ordinal(video.queue_position)} in line`);
    if (live.retrying) parts.push("retrying");
  } else if (video.status === "in_progress") {
    if (live.cancelRequested) return "Stopping…";
    if (live.total) parts.push(`step ${live.step} of ${live.total}`);
    else parts.push("starting");
  } else if (video.status === "completed" && video.completed_at) {
    parts.push(`in ${formatDuration(video.completed_at - video.created_at)}`);
  } else if (video.status === "failed" && video.error) {
    return `Failed: ${video.error.message}`;
  }
  const eta = live.etaAt ? (live.etaAt - Date.now()) / 1000 : null;
  if (!isTerminal(video) && eta !== null && eta >= 1) parts.push(`about ${formatDuration(eta)} left`);
  return parts.join(" · ");
}

/** Announce a message to screen readers and show it briefly. */
export function toast(message, kind = "info") {
  const box = document.getElementById("toasts");
  if (!box) return;
  const item = h("div", { class: `toast toast-${kind}` }, message);
  box.append(item);
  setTimeout(() => item.classList.add("toast-out"), 3500);
  setTimeout(() => item.remove(), 4000);
}

export function showError(el, message) {
  if (!el) return;
  el.textContent = message || "";
  el.hidden = !message;
}

/** Copy text to the clipboard (with a fallback for pages served over plain http on another name). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = h("textarea", { class: "offscreen" }, text);
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok;
  }
}
