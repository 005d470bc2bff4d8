// The JSON API under /api: a bearer token from sessionStorage, problem+json errors as ApiError.

const TOKEN_KEY = "tillit.token";

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's claims, unverified: only to choose what to show (the API checks every call). */
export function claims() {
  const t = token();
  if (!t) return null;
  try {
    const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(decodeURIComponent(escape(atob(part))));
  } catch {
    return null;
  }
}

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `HTTP ${status}`);
    this.status = status;
    this.problem = problem || {};
  }

  /** The message for one field, e.g. "body.body", from a 422's errors[]. */
  field(name) {
    const found = (this.problem.errors || []).find((e) => e.field === name || e.field.startsWith(name + "."));
    return found ? found.message : null;
  }
}

let onUnauthorised = () => {};
export function whenUnauthorised(callback) {
  onUnauthorised = callback;
}

export async function api(path, { method = "GET", body, params, signal } = {}) {
  const url = new URL("/api" + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { accept: "application/json" };
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const reply = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  if (reply.status === 204) return null;
  const text = await reply.text();
  const data = text ? JSON.parse(text) : null;
  if (!reply.ok) {
    if (reply.status === 401 && t) onUnauthorised();
    throw new ApiError(reply.status, data);
  }
  return data;
}

/** The development sign-in's users, or null when it is off. */
export async function devUsers() {
  const reply = await fetch("/api/dev/users", { headers: { accept: "application/json" } });
  return reply.ok ? reply.json() : null;
}

export async function devSignIn(userId) {
  return api("/dev/sign-in", { method: "POST", body: { user_id: userId } });
}
