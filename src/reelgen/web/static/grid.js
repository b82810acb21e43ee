// A paged grid of videos (the library and the gallery): thumbnails, state, hover or focus plays the clip,
// and keyset paging through the API (`after` = the last id shown), so 10,000 videos cost one page at a time.

import { api } from "./api.js";
import { $, STATUS_LABELS, formatAgo, formatSeconds, formatSize, h, isTerminal, showError } from "./ui.js";
import { watcher } from "./watch.js";

const PAGE_SIZE = 24;
const HOVER_DELAY_MS = 120;

// Gallery cards read through /v1/gallery/{id}/content (anyone may watch a published video; only its owner
// reaches /v1/videos/{id}), and open the video itself rather than the owner's page.
function urls(video, gallery) {
  if (gallery) {
    return {
      href: api.galleryContentUrl(video.id),
      video: api.galleryContentUrl(video.id),
      thumbnail: api.galleryContentUrl(video.id, "thumbnail"),
    };
  }
  return {
    href: `/library/${encodeURIComponent(video.id)}`,
    video: api.contentUrl(video.id),
    thumbnail: api.contentUrl(video.id, "thumbnail"),
  };
}

const WITHHELD = new Set(["held", "blocked"]);

function thumbnail(src) {
  return h("img", {
    src,
    alt: "",
    loading: "lazy",
    decoding: "async",
  });
}

// Unfinished videos are followed only while their card is on screen: a page scrolled through thousands of
// queued videos must not poll them all.
const following = new Map();
const visibility = new IntersectionObserver((entries) => {
  for (const entry of entries) {
    const el = entry.target;
    if (entry.isIntersecting && !following.has(el)) {
      const stop = el.follow();
      if (stop) following.set(el, stop);
    } else if (!entry.isIntersecting && following.has(el)) {
      following.get(el)();
      following.delete(el);
    }
  }
});

/** A badge-sized state: "Queued · #3", "Step 12/40", "Failed". */
function shortState(v, live) {
  if (v.status === "queued") return v.queue_position ? `Queued · #${v.queue_position}` : "Queued";
  if (v.status === "in_progress") return live.total ? `Step ${live.step}/${live.total}` : "Starting";
  return STATUS_LABELS[v.status] || v.status;
}

/** One grid item; unfinished videos follow their progress and get their thumbnail when done. */
export function videoCard(video, { gallery = false } = {}) {
  const links = urls(video, gallery);
  const thumb = h("div", { class: "thumb" });
  const badge = h("span", { class: "badge" });
  const bar = h("progress", { class: "thumb-progress", max: 100 });
  const link = h(
    "a",
    { class: "card-link", href: links.href },
    thumb,
    h("span", { class: "card-prompt" }, video.prompt || "(no prompt)"),
  );
  const metaEl = h("p", { class: "card-meta muted" });
  const el = h("li", { class: "card", dataset: { id: video.id } }, link, metaEl);

  let hasThumb = false;
  let latest = video;
  function render(v, live = {}) {
    latest = v;
    el.dataset.status = v.status;
    const withheld = !gallery && WITHHELD.has(v.review?.state);
    el.dataset.review = v.review?.state || "none";
    if (v.status === "completed" && withheld) {
      // Held by a moderation check: its content is not served to its owner until a moderator releases it.
      thumb.replaceChildren(h("div", { class: "placeholder" }), h("span", { class: "badge" }, "Held for review"));
    } else if (v.status === "completed" && !hasThumb) {
      hasThumb = true;
      thumb.replaceChildren(thumbnail(links.thumbnail), h("span", { class: "duration" }, formatSeconds(v.seconds)));
    } else if (v.status !== "completed") {
      badge.textContent = shortState(v, live);
      bar.hidden = isTerminal(v);
      if (v.status === "in_progress") bar.value = v.progress || 0;
      else bar.removeAttribute("value");
      if (!thumb.contains(badge)) thumb.replaceChildren(h("div", { class: "placeholder" }), badge, bar);
      if (live.preview && !isTerminal(v)) {
        const img = thumb.querySelector("img.preview") || h("img", { class: "preview", alt: "" });
        img.src = live.preview;
        if (!img.isConnected) thumb.prepend(img);
      } else {
        thumb.querySelector("img.preview")?.remove();
      }
    }
    const bits = [formatSize(v.size), formatAgo(v.created_at)];
    if (v.params && v.params.n > 1) bits.splice(1, 0, `${v.params.n} variations`);
    if (v.has_audio) bits.splice(1, 0, "with sound");
    if (v.published_at) bits.push("published");
    else if (!gallery && v.review?.state === "pending") bits.push("in review");
    metaEl.textContent = bits.join(" · ");
  }
  render(video);
  if (!isTerminal(video)) visibility.observe(el);
  el.follow = () => (isTerminal(latest) ? null : watcher.watch(latest, render));

  // Hover (or keyboard focus) plays the clip, muted, in place of the thumbnail.
  let timer = 0;
  let player = null;
  const start = () => {
    if (el.dataset.status !== "completed" || player || (!gallery && WITHHELD.has(el.dataset.review))) return;
    timer = setTimeout(() => {
      player = h("video", {
        class: "hover-player",
        src: links.video,
        muted: true,
        loop: true,
        autoplay: true,
        playsInline: true,
        preload: "auto",
        "aria-hidden": "true",
      });
      thumb.append(player);
      player.play().catch(() => {});
    }, HOVER_DELAY_MS);
  };
  const stop = () => {
    clearTimeout(timer);
    if (player) {
      player.pause();
      player.removeAttribute("src");
      player.load(); // drop the connection
      player.remove();
      player = null;
    }
  };
  link.addEventListener("pointerenter", start);
  link.addEventListener("pointerleave", stop);
  link.addEventListener("focus", start);
  link.addEventListener("blur", stop);
  return el;
}

/** Fill #grid from `fetchPage({limit, after})`, one page at a time (a button, and automatically on scroll).
 * `cardOptions` go to each videoCard (`{gallery: true}` for published videos). */
export function pagedGrid(fetchPage, cardOptions = {}) {
  const grid = $("#grid");
  const more = $("#more");
  const status = $("#grid-status");
  let after = null;
  let loading = false;
  let count = 0;

  async function load() {
    if (loading) return;
    loading = true;
    more.disabled = true;
    grid.setAttribute("aria-busy", "true");
    try {
      const page = await fetchPage({ limit: PAGE_SIZE, after });
      for (const video of page.data) {
        if (grid.querySelector(`[data-id="${CSS.escape(video.id)}"]`)) continue;
        grid.append(videoCard(video, cardOptions));
        count += 1;
      }
      after = page.last_id || after;
      more.hidden = !page.has_more;
      $("#grid-empty").hidden = count > 0;
      status.textContent = count ? `${count} video${count === 1 ? "" : "s"}${page.has_more ? ", more below" : ""}` : "";
      showError($("#grid-error"), "");
    } catch (err) {
      showError($("#grid-error"), `Could not load videos: ${err.message}`);
    } finally {
      loading = false;
      more.disabled = false;
      grid.setAttribute("aria-busy", "false");
      document.body.dataset.ready = "true";
    }
  }

  more.addEventListener("click", load);
  // Load the next page before the visitor reaches the end. Observing afresh after each page reports the
  // button's position again, so a screen that is still not full keeps filling.
  const nearEnd = new IntersectionObserver(
    (entries) => {
      if (entries.some((e) => e.isIntersecting) && !more.hidden && !loading) load().then(watchEnd);
    },
    { rootMargin: "400px" },
  );
  function watchEnd() {
    nearEnd.unobserve(more);
    if (!more.hidden) nearEnd.observe(more);
  }
  return load().then(watchEnd);
}
