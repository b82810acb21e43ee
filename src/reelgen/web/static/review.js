// The moderators' review page: the review queue (GET /v1/admin/reviews: approve, or reject with a reason) and
// the jobs held by a moderation check (GET /v1/admin/held: release, or reject with a reason). Moderators may
// watch any video through /v1/videos/{id}/content, held ones included.

import { api, ApiError } from "./api.js";
import { $, formatAgo, formatSeconds, formatSize, h, showError, toast } from "./ui.js";

const PAGE_SIZE = 50;

const LISTS = {
  pending: {
    accept: { label: "Approve", run: (id) => api.approve(id), done: "Approved: it is in the gallery" },
    reject: { label: "Reject", run: (id, reason) => api.reject(id, reason), done: "Rejected" },
  },
  held: {
    accept: { label: "Release", run: (id) => api.release(id), done: "Released" },
    reject: { label: "Reject", run: (id, reason) => api.rejectHeld(id, reason), done: "Rejected for good" },
  },
};

function media(video) {
  if (video.status !== "completed") {
    const label = video.status === "queued" ? "Not generated yet (waiting for release)" : video.status;
    return h("div", { class: "placeholder" }, h("span", {}, label));
  }
  return h("video", {
    src: api.contentUrl(video.id),
    poster: api.contentUrl(video.id, "thumbnail"),
    controls: true,
    muted: true,
    loop: true,
    playsInline: true,
    preload: "metadata",
    "aria-label": `Video: ${video.prompt}`,
  });
}

function item(kind, { owner, video }, onDone) {
  const actions = LISTS[kind];
  const error = h("p", { class: "error", role: "alert", hidden: true });
  const reasonId = `reason-${video.id}`;
  const reason = h("input", {
    id: reasonId,
    class: "reason",
    type: "text",
    maxlength: 500,
    placeholder: "Reason (needed to reject; the owner sees it)",
    autocomplete: "off",
  });
  const buttons = [];
  async function decide(action, needsReason) {
    showError(error, "");
    const text = reason.value.trim();
    if (needsReason && !text) {
      showError(error, "Give a reason to reject.");
      reason.focus();
      return;
    }
    buttons.forEach((b) => (b.disabled = true));
    try {
      await action.run(video.id, text);
      toast(action.done, "ok");
      onDone(el);
    } catch (err) {
      // 409: someone else decided first; the item is gone from this list either way.
      if (err instanceof ApiError && (err.status === 409 || err.status === 404)) {
        toast(`Already decided elsewhere: ${err.message}`);
        onDone(el);
        return;
      }
      showError(error, err.message);
      buttons.forEach((b) => (b.disabled = false));
    }
  }
  const accept = h(
    "button",
    { type: "button", class: "primary accept", onclick: () => decide(actions.accept, false) },
    actions.accept.label,
  );
  const reject = h(
    "button",
    { type: "button", class: "danger reject", onclick: () => decide(actions.reject, true) },
    actions.reject.label,
  );
  buttons.push(accept, reject);
  const when = video.review.submitted_at ? formatAgo(video.review.submitted_at) : "";
  const meta = [`by ${owner}`, kind === "pending" ? `submitted ${when}` : `held ${when}`, video.model];
  meta.push(formatSize(video.size), formatSeconds(video.seconds));
  const el = h(
    "li",
    { class: "review-item", dataset: { id: video.id, status: video.status } },
    h("div", { class: "review-media" }, media(video)),
    h(
      "div",
      { class: "review-body" },
      h("p", { class: "review-prompt" }, video.prompt),
      h("p", { class: "muted review-meta" }, meta.join(" · ")),
      kind === "held" ? h("p", { class: "review-reason" }, `Held: ${video.review.reason || "no reason given"}`) : null,
      h("label", { class: "offscreen", for: reasonId }, "Reason"),
      reason,
      h("div", { class: "toolbar" }, accept, reject),
      error,
    ),
  );
  return el;
}

function section(kind) {
  const list = $(`#${kind}`);
  const more = $(`#${kind}-more`);
  const empty = $(`#${kind}-empty`);
  const count = $(`#${kind}-count`);
  let after = null;

  function update() {
    const n = list.children.length;
    empty.hidden = n > 0;
    count.textContent = n ? `(${n}${more.hidden ? "" : "+"})` : "";
  }

  function remove(el) {
    el.remove();
    update();
  }

  async function load() {
    more.disabled = true;
    try {
      const page = await api.reviews(kind, { limit: PAGE_SIZE, after });
      for (const entry of page.data) {
        if (!list.querySelector(`[data-id="${CSS.escape(entry.video.id)}"]`)) list.append(item(kind, entry, remove));
      }
      after = page.last_id || after;
      more.hidden = !page.has_more;
      update();
    } finally {
      more.disabled = false;
    }
  }

  more.addEventListener("click", () => load().catch((err) => showError($("#review-error"), err.message)));
  return load;
}

async function main() {
  try {
    await Promise.all([section("pending")(), section("held")()]);
  } catch (err) {
    const message =
      err instanceof ApiError && err.status === 403
        ? "This page is for moderators: your account does not have the moderator role."
        : `Could not load the review queue: ${err.message}`;
    showError($("#review-error"), message);
  } finally {
    document.body.dataset.ready = "true";
  }
}

main();
