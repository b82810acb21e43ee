// A video while it waits and runs: place in line and ETA, then step i of n with preview frames, a cancel
// button, and the finished clip playing in place. Used by the create page's queue and the video page.

import { api } from "./api.js";
import { describe, formatSeconds, formatSize, h, isTerminal, toast } from "./ui.js";
import { watcher } from "./watch.js";

function meta(video) {
  const p = video.params || {};
  const bits = [formatSize(video.size), formatSeconds(video.seconds)];
  if (p.n > 1) bits.push(`${p.n} variations`);
  if (p.seed !== undefined) bits.push(`seed ${p.seed}`);
  if (p.steps) bits.push(`${p.steps} steps`);
  return bits.join(" · ");
}

/**
 * A list item for `video` that keeps itself up to date. Returns {el, stop}.
 * `player`: "inline" (small, muted loop: the queue) or "full" (with controls: the video page).
 */
export function jobCard(video, { player = "inline", link = true, cancel: withCancel = true, onChange = null } = {}) {
  const href = `/library/${encodeURIComponent(video.id)}`;
  const media = h("div", { class: "job-media" });
  const promptEl = link
    ? h("a", { class: "job-prompt", href, title: video.prompt || "" }, video.prompt || "(no prompt)")
    : h("p", { class: "job-prompt" }, video.prompt || "(no prompt)");
  const status = h("p", { class: "job-status" });
  const progress = h("progress", { class: "job-progress", max: 100, value: 0, "aria-label": "Progress" });
  const cancel = h("button", { type: "button", class: "small", "aria-label": "Cancel this video" }, "Cancel");
  const error = h("p", { class: "error small", hidden: true });
  const el = h(
    "li",
    { class: "job", dataset: { id: video.id } },
    media,
    h(
      "div",
      { class: "job-body" },
      promptEl,
      status,
      progress,
      h("p", { class: "job-meta muted" }, meta(video)),
      h("div", { class: "job-actions" }, cancel),
      error,
    ),
  );

  let shown = null; // what the media box shows: "placeholder" | "preview" | "video" | "none"
  let last = { video, live: {} };
  let lastStatus = video.status;

  function setMedia(kind, build) {
    if (shown === kind) return;
    shown = kind;
    media.replaceChildren(build());
  }

  function render(v, live) {
    last = { video: v, live };
    el.dataset.status = v.status;
    el.dataset.step = live.step || 0;
    status.textContent = live.gone ? "Deleted" : describe(v, live);
    const finished = isTerminal(v) || live.gone;
    progress.hidden = finished;
    if (v.status === "queued") progress.removeAttribute("value"); // indeterminate while waiting
    else progress.value = v.progress || 0;
    cancel.hidden = finished || !withCancel;
    cancel.disabled = Boolean(live.cancelRequested);

    if (v.status === "completed") {
      setMedia("video", () =>
        h("video", {
          src: api.contentUrl(v.id),
          muted: true,
          loop: player === "inline",
          autoplay: player === "inline",
          controls: player !== "inline",
          playsInline: true,
          preload: "auto",
          poster: api.contentUrl(v.id, "thumbnail"),
          "aria-label": `Video: ${v.prompt || v.id}`,
        }),
      );
    } else if (live.preview && !finished) {
      if (shown !== "preview") setMedia("preview", () => h("img", { class: "preview", alt: "Preview of the video being generated" }));
      media.querySelector("img").src = live.preview;
    } else {
      const label = finished ? (v.status === "failed" ? "Failed" : "Cancelled") : "";
      setMedia(`placeholder-${label}`, () => h("div", { class: "placeholder" }, h("span", {}, label)));
    }

    if (v.status !== lastStatus) {
      if (v.status === "completed") toast(`Ready: ${v.prompt || v.id}`, "ok");
      else if (v.status === "failed") toast(`Failed: ${v.error ? v.error.message : v.prompt}`, "error");
      else if (v.status === "cancelled") toast("Cancelled", "info");
      lastStatus = v.status;
    }
    if (onChange) onChange(v, live);
  }

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    error.hidden = true;
    try {
      const updated = await api.cancel(video.id);
      if (!isTerminal(updated)) last.live.cancelRequested = true;
      watcher.update(updated);
      render(updated, last.live);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      cancel.disabled = false;
    }
  });

  const stopWatch = watcher.watch(video, render);
  // The ETA counts down between events.
  const ticker = setInterval(() => {
    if (!isTerminal(last.video) && last.live.etaAt) status.textContent = describe(last.video, last.live);
  }, 1000);
  return {
    el,
    stop() {
      clearInterval(ticker);
      stopWatch();
    },
  };
}
