// The studio's only way to the server: the public /v1 API, exactly as any other client calls it.
// Errors arrive in OpenAI's envelope {"error": {"message", "type", "param", "code"}}; ApiError keeps them.

export class ApiError extends Error {
  constructor(status, { message, type = null, param = null, code = null } = {}) {
    super(message || `request failed (HTTP ${status})`);
    this.name = "ApiError";
    this.status = status;
    this.type = type;
    this.param = param;
    this.code = code;
  }
}

// With authentication on, the page carries its session's CSRF token; every unsafe call must send it back.
const csrfToken = document.querySelector('meta[name="csrf-token"]')?.content || null;
const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

async function call(method, path, { json, form } = {}) {
  const init = { method, headers: { Accept: "application/json" } };
  if (csrfToken && UNSAFE.has(method)) init.headers["X-CSRF-Token"] = csrfToken;
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // the browser sets multipart/form-data with its boundary
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, { message: "The server could not be reached. Is reelgen still running?", code: "offline" });
  }
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (response.status === 401 && csrfToken) {
    // The session ended (signed out elsewhere, expired, or the user was disabled): sign in again.
    location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
  }
  if (!response.ok) {
    const error = body && typeof body.error === "object" ? body.error : { message: text.slice(0, 300) };
    throw new ApiError(response.status, error);
  }
  const pollAfter = Number(response.headers.get("openai-poll-after-ms")) || null;
  return { body, pollAfter };
}

const enc = encodeURIComponent;

function query(params) {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") q.set(key, String(value));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

export const api = {
  async models() {
    return (await call("GET", "/v1/models")).body.data;
  },

  /** One page of the owner's videos, newest first: {data, has_more, last_id}. */
  async list({ limit = 24, after } = {}) {
    return (await call("GET", `/v1/videos${query({ limit, after })}`)).body;
  },

  /** One page of published videos: {data, has_more, last_id}. */
  async gallery({ limit = 24, after } = {}) {
    return (await call("GET", `/v1/gallery${query({ limit, after })}`)).body;
  },

  async get(id) {
    return (await call("GET", `/v1/videos/${enc(id)}`)).body;
  },

  /** The video plus how long to wait before asking again (the openai-poll-after-ms header). */
  async poll(id) {
    return call("GET", `/v1/videos/${enc(id)}`);
  },

  /** Create: JSON, or multipart/form-data when a reference image file goes along (`input_reference`). */
  async create(fields, image = null) {
    if (!image) return (await call("POST", "/v1/videos", { json: fields })).body;
    const form = new FormData();
    for (const [key, value] of Object.entries(fields)) form.append(key, String(value));
    form.append("input_reference", image, image.name || "reference");
    return (await call("POST", "/v1/videos", { form })).body;
  },

  async remix(id, prompt) {
    return (await call("POST", `/v1/videos/${enc(id)}/remix`, { json: { prompt } })).body;
  },

  async cancel(id) {
    return (await call("POST", `/v1/videos/${enc(id)}/cancel`)).body;
  },

  async remove(id) {
    return (await call("DELETE", `/v1/videos/${enc(id)}`)).body;
  },

  async publish(id, published = true) {
    return (await call("POST", `/v1/videos/${enc(id)}/${published ? "publish" : "unpublish"}`)).body;
  },

  // --- publishing with approval (moderators: /v1/admin/reviews and /v1/admin/held) ---
  /** One page of the review queue (state "pending") or the held list ("held"), oldest first. */
  async reviews(state = "pending", { limit = 50, after } = {}) {
    const path = state === "held" ? "/v1/admin/held" : "/v1/admin/reviews";
    return (await call("GET", `${path}${query({ limit, after })}`)).body;
  },

  async approve(id) {
    return (await call("POST", `/v1/admin/reviews/${enc(id)}/approve`)).body;
  },

  async reject(id, reason) {
    return (await call("POST", `/v1/admin/reviews/${enc(id)}/reject`, { json: { reason } })).body;
  },

  async release(id) {
    return (await call("POST", `/v1/admin/held/${enc(id)}/release`)).body;
  },

  async rejectHeld(id, reason) {
    return (await call("POST", `/v1/admin/held/${enc(id)}/reject`, { json: { reason } })).body;
  },

  /** A published video's asset, readable by anyone signed in. */
  galleryContentUrl(id, variant = "video") {
    return `/v1/gallery/${enc(id)}/content${query({ variant: variant === "video" ? undefined : variant })}`;
  },

  contentUrl(id, variant = "video", variation = 0) {
    return `/v1/videos/${enc(id)}/content${query({ variant: variant === "video" ? undefined : variant, variation: variation || undefined })}`;
  },

  eventsUrl(id) {
    return `/v1/videos/${enc(id)}/events`;
  },
};
