// Follows unfinished videos live: the API's event stream (GET /v1/videos/{id}/events) for a few of them, and
// polling GET /v1/videos/{id} (at the pace of its openai-poll-after-ms header) for the rest. Browsers open at
// most six connections to one server, so a page with many queued videos must not hold a stream for each.

import { api, ApiError } from "./api.js";
import { isTerminal } from "./ui.js";

const MAX_STREAMS = 3;

export class Watcher {
  constructor() {
    this.watches = new Map();
    this.streams = 0;
  }

  /**
   * Call onChange(video, live) now and on every change until the video is finished (and once more then).
   * `live` = {step, total, preview, etaAt, cancelRequested, retrying, gone}. Returns a function that stops.
   */
  watch(video, onChange) {
    let w = this.watches.get(video.id);
    if (!w) {
      w = {
        id: video.id,
        video,
        live: { step: 0, total: 0, preview: null, etaAt: etaAt(video.eta_seconds), cancelRequested: false },
        listeners: new Set(),
        source: null,
        timer: null,
        frame: 0,
        done: isTerminal(video),
      };
      this.watches.set(video.id, w);
      if (!w.done) this._start(w);
    }
    w.listeners.add(onChange);
    onChange(w.video, w.live);
    return () => {
      w.listeners.delete(onChange);
      if (!w.listeners.size) this._close(w);
    };
  }

  /** Fold a Video object we got elsewhere (e.g. the answer to a cancel) into the watch. */
  update(video) {
    const w = this.watches.get(video.id);
    if (w) this._setVideo(w, video);
  }

  _start(w) {
    if (this.streams < MAX_STREAMS) this._stream(w);
    else this._poll(w);
  }

  _emit(w) {
    // Coalesce bursts (a reconnect replays the whole event log) into one render per frame.
    if (w.frame) return;
    w.frame = requestAnimationFrame(() => {
      w.frame = 0;
      for (const listener of w.listeners) listener(w.video, w.live);
    });
  }

  _setVideo(w, video) {
    w.video = video;
    if (video.eta_seconds !== undefined) w.live.etaAt = etaAt(video.eta_seconds);
    if (video.status !== "in_progress") w.live.cancelRequested = false;
    if (isTerminal(video)) this._finish(w);
    this._emit(w);
  }

  _stream(w) {
    this.streams += 1;
    const source = new EventSource(api.eventsUrl(w.id));
    w.source = source;
    const data = (event) => JSON.parse(event.data);
    source.addEventListener("video", (event) => this._setVideo(w, data(event)));
    source.addEventListener("status", (event) => {
      const d = data(event);
      const video = { ...w.video, status: d.status };
      if (d.status === "queued") {
        w.live.step = 0;
        w.live.total = 0;
        w.live.retrying = Boolean(d.reason || d.error);
      } else if (d.status === "in_progress") {
        video.queue_position = null;
        w.live.retrying = false;
      }
      w.video = video;
      this._emit(w);
    });
    source.addEventListener("progress", (event) => {
      const d = data(event);
      w.video = { ...w.video, status: "in_progress", queue_position: null, progress: d.progress };
      w.live.step = d.step;
      w.live.total = d.total_steps;
      if (d.preview) w.live.preview = d.preview;
      this._emit(w);
    });
    source.addEventListener("queue", (event) => {
      const d = data(event);
      w.video = { ...w.video, queue_position: d.queue_position };
      w.live.etaAt = etaAt(d.eta_seconds);
      this._emit(w);
    });
    source.addEventListener("cancel_requested", () => {
      w.live.cancelRequested = true;
      this._emit(w);
    });
    source.addEventListener("error", (event) => {
      if (event.data) {
        // Sent by the server: the video was deleted while we watched.
        w.live.gone = true;
        this._finish(w);
        this._emit(w);
      } else if (source.readyState === EventSource.CLOSED) {
        // The browser gave up reconnecting: keep following by polling.
        this._release(w);
        this._poll(w);
      }
      // Otherwise the browser reconnects by itself and resumes after the last event id it saw.
    });
  }

  async _poll(w) {
    if (w.done) return;
    let wait = 1500;
    try {
      const { body, pollAfter } = await api.poll(w.id);
      this._setVideo(w, body);
      wait = Math.min(Math.max(pollAfter || 1500, 500), 5000);
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        w.live.gone = true;
        this._finish(w);
        this._emit(w);
        return;
      }
      wait = 3000;
    }
    if (!w.done && !w.source) w.timer = setTimeout(() => this._poll(w), wait);
  }

  _release(w) {
    if (w.source) {
      w.source.close();
      w.source = null;
      this.streams -= 1;
      // Hand the freed stream to a video that is being polled.
      for (const other of this.watches.values()) {
        if (this.streams >= MAX_STREAMS) break;
        if (other !== w && !other.done && !other.source) {
          clearTimeout(other.timer);
          this._stream(other);
        }
      }
    }
  }

  _finish(w) {
    w.done = true;
    clearTimeout(w.timer);
    this._release(w);
  }

  _close(w) {
    this._finish(w);
    cancelAnimationFrame(w.frame);
    this.watches.delete(w.id);
  }
}

function etaAt(seconds) {
  return seconds === null || seconds === undefined ? null : Date.now() + seconds * 1000;
}

export const watcher = new Watcher();
