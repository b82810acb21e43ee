// One video: the player (or its live progress), the full recipe, download, remix, submit for publication (or
// withdraw), cancel, delete. Publishing goes through a moderator: the review state says where it stands.

import { api, ApiError } from "./api.js";
import { jobCard } from "./jobcard.js";
import {
  $,
  copyText,
  describe,
  formatAgo,
  formatDate,
  formatSeconds,
  formatSize,
  h,
  isTerminal,
  showError,
  toast,
} from "./ui.js";

const id = $("#main").dataset.videoId;
let video = null;
let variation = 0;
let card = null;

// Where the video stands on its way to the gallery (Video.review.state), in words.
const REVIEW_TEXT = {
  pending: () => "Submitted for publication: waiting for a moderator's review.",
  approved: (v) => `Published in the gallery${v.published_at ? ` since ${formatDate(v.published_at)}` : ""}.`,
  rejected: (v) => `Not published: a moderator rejected it (${v.review.reason || "no reason given"}). You may submit it again.`,
  held: (v) =>
    `Held for review by a moderation check (${v.review.reason || "no reason given"}). ` +
    (v.status === "queued" ? "It will run once a moderator releases it." : "It can be watched once a moderator releases it."),
  blocked: (v) => `Blocked by a moderator (${v.review.reason || "no reason given"}).`,
};
const WITHHELD = new Set(["held", "blocked"]);

function reviewState(v) {
  return (v.review && v.review.state) || "none";
}

function recipeRows(v) {
  const p = v.params;
  const rows = [
    ["Prompt", p.prompt],
    ["Negative prompt", p.negative_prompt || "none"],
    ["Model", p.model],
    ["Seed", String(p.seed)],
    ["Steps", String(p.steps)],
    ["Guidance", String(p.guidance_scale)],
    ["Speed preset", p.preset || "quality"],
    ["LoRA", p.lora ? `${p.lora} × ${p.lora_scale}` : "none"],
    ["Size", formatSize(p.size)],
    ["Duration", `${formatSeconds(p.seconds)} (${p.num_frames} frames at ${p.fps} fps)`],
    ["Variations", String(p.n)],
    ["Reference image", p.input_image ? "yes" : "none"],
    ["Created", formatDate(v.created_at)],
  ];
  if (v.has_audio !== null && v.has_audio !== undefined) rows.push(["Sound", v.has_audio ? "yes (unmute to hear it)" : "none"]);
  if (v.completed_at) rows.push(["Finished", formatDate(v.completed_at)]);
  if (v.attempt > 1) rows.push(["Attempts", String(v.attempt)]);
  if (v.remixed_from_video_id) {
    rows.push([
      "Remixed from",
      h("a", { href: `/library/${encodeURIComponent(v.remixed_from_video_id)}` }, v.remixed_from_video_id),
    ]);
  }
  if (v.published_at) rows.push(["Published", formatDate(v.published_at)]);
  rows.push(["Id", h("code", {}, v.id)]);
  return rows;
}

/** The body of POST /v1/videos that makes this video again. */
function recipeJson(v) {
  const p = v.params;
  const body = {
    prompt: p.prompt,
    model: p.model,
    size: p.size,
    seconds: String(p.seconds),
    seed: p.seed,
    steps: p.steps,
    guidance_scale: p.guidance_scale,
    n: p.n,
  };
  if (p.negative_prompt) body.negative_prompt = p.negative_prompt;
  if (p.fps !== undefined) body.fps = p.fps;
  if (p.preset && p.preset !== "quality") body.preset = p.preset;
  if (p.lora) Object.assign(body, { lora: p.lora, lora_scale: p.lora_scale });
  return JSON.stringify(body, null, 2);
}

function renderPlayer(v) {
  const player = $("#player");
  const nav = $("#variations");
  if (!isTerminal(v)) {
    if (!card) {
      card = jobCard(v, {
        player: "full",
        link: false,
        cancel: false, // the page's own toolbar has it
        onChange: (updated, live) => {
          if (isTerminal(updated)) {
            card.stop();
            card = null;
            load(); // the finished video, with everything a finished one has
          } else {
            renderStatus(updated, live);
          }
        },
      });
      player.replaceChildren(h("ul", { class: "jobs solo" }, card.el));
      player.dataset.key = "live";
    }
    nav.hidden = true;
    return;
  }
  const withheld = WITHHELD.has(reviewState(v));
  const key = `${v.status}:${variation}:${withheld}`;
  if (player.dataset.key === key) return; // keep the playing video as it is (e.g. after publishing)
  player.dataset.key = key;
  if (v.status === "completed" && withheld) {
    const why = reviewState(v) === "held" ? "Held for review by a moderation check" : "Blocked by a moderator";
    player.replaceChildren(h("div", { class: "placeholder big" }, h("span", {}, why)));
    nav.hidden = true;
    return;
  }
  if (v.status !== "completed") {
    const why = v.status === "failed" ? `Failed: ${v.error ? v.error.message : "unknown error"}` : "Cancelled before it finished";
    player.replaceChildren(h("div", { class: "placeholder big" }, h("span", {}, why)));
    nav.hidden = true;
    return;
  }
  player.replaceChildren(
    h("video", {
      id: "video",
      src: api.contentUrl(v.id, "video", variation),
      poster: variation ? undefined : api.contentUrl(v.id, "thumbnail"),
      controls: true,
      autoplay: true,
      muted: true,
      loop: true,
      playsInline: true,
      preload: "auto",
      "aria-label": `Video: ${v.prompt}`,
    }),
  );
  $("#video").play().catch(() => {}); // autoplay is not always honoured for a replaced element
  const n = v.params.n || 1;
  nav.hidden = n < 2;
  if (n > 1) {
    nav.replaceChildren(
      h("span", { class: "muted" }, "Variation"),
      ...Array.from({ length: n }, (_, i) =>
        h(
          "button",
          {
            type: "button",
            class: "small",
            "aria-pressed": String(i === variation),
            "aria-label": `Variation ${i + 1} (seed ${v.params.seed + i})`,
            onclick: () => {
              variation = i;
              render(v);
            },
          },
          String(i + 1),
        ),
      ),
    );
  }
}

function renderStatus(v, live = {}) {
  const ago = formatAgo(v.created_at);
  $("#detail-status").textContent = `${describe(v, live)} · made ${ago}`;
}

function render(v) {
  video = v;
  document.title = `${v.prompt.slice(0, 60)} · reelgen studio`;
  $("#detail").hidden = false;
  $("#detail").dataset.status = v.status;
  $("#detail-prompt").textContent = v.prompt;
  renderStatus(v);
  renderPlayer(v);

  const state = reviewState(v);
  const download = $("#download");
  download.hidden = v.status !== "completed" || WITHHELD.has(state);
  download.href = api.contentUrl(v.id, "video", variation);
  download.setAttribute("download", `${v.id}${variation ? `-${variation}` : ""}.mp4`);
  $("#remix").href = `/?remix=${encodeURIComponent(v.id)}`;
  const publish = $("#publish");
  publish.hidden = v.status !== "completed" || WITHHELD.has(state);
  publish.textContent = {
    pending: "Withdraw",
    approved: "Unpublish",
    rejected: "Submit again",
  }[state] || "Submit for publication";
  publish.dataset.action = state === "pending" || state === "approved" ? "withdraw" : "submit";
  publish.title =
    publish.dataset.action === "withdraw"
      ? "Take it out of the review queue or the gallery"
      : "Ask a moderator to publish it in the gallery";
  const reviewLine = $("#review-state");
  reviewLine.hidden = state === "none";
  reviewLine.dataset.state = state;
  reviewLine.textContent = state === "none" ? "" : REVIEW_TEXT[state](v);
  $("#cancel").hidden = isTerminal(v);

  $("#recipe").replaceChildren(
    ...recipeRows(v).flatMap(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
  document.body.dataset.ready = "true";
}

async function load() {
  try {
    render(await api.get(id));
  } catch (err) {
    const message =
      err instanceof ApiError && err.status === 404 ? "This video does not exist (it may have been deleted)." : err.message;
    showError($("#video-error"), message);
    $("#detail").hidden = true;
    document.body.dataset.ready = "true";
  }
}

async function act(button, action) {
  showError($("#action-error"), "");
  button.disabled = true;
  try {
    await action();
  } catch (err) {
    showError($("#action-error"), err.message);
  } finally {
    button.disabled = false;
  }
}

function setup() {
  $("#publish").addEventListener("click", (event) =>
    act(event.currentTarget, async () => {
      const submit = $("#publish").dataset.action !== "withdraw";
      const updated = await api.publish(id, submit);
      toast(submit ? "Submitted: a moderator will review it" : "Withdrawn from publication", "ok");
      render(updated);
    }),
  );
  $("#cancel").addEventListener("click", (event) =>
    act(event.currentTarget, async () => {
      const updated = await api.cancel(id);
      toast(isTerminal(updated) ? "Cancelled" : "Stopping at the next step…");
      if (isTerminal(updated)) load();
    }),
  );
  const dialog = $("#confirm-delete");
  $("#delete").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue !== "delete") return;
    act($("#delete"), async () => {
      await api.remove(id);
      card?.stop();
      toast("Deleted", "ok");
      location.assign("/library");
    });
  });
  $("#copy-recipe").addEventListener("click", async () => {
    if (video && (await copyText(recipeJson(video)))) toast("Recipe copied: a POST /v1/videos body", "ok");
  });
}

setup();
load();
