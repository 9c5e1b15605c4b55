// Shared by the queue page and the operators' console: tokens, API calls, the words a
// problem document is shown in, formatting and a tiny DOM builder. No framework, no build.
"use strict";

window.TK = (() => {
  const TOKEN_KEY = "ticketing.token.";
  const USER_KEY = "ticketing.user.";
  // Renew a token this long before it expires, so no call goes out with a dying one.
  const RENEW_SECONDS = 120;

  // What a fan or an operator reads for each problem code (the code is stable, the
  // server's detail is for developers). A function gets the whole problem document.
  const WORDS = {
    unauthorized: "You need to sign in again. Reload the page.",
    invalid_token: "Your sign-in is not valid any more. Reload the page.",
    token_expired: "Your sign-in has expired. Reload the page.",
    forbidden: "This needs an operator account.",
    rate_limited: "Too many requests at once. Trying again in a moment.",
    validation_error: (p) => "That was not accepted: " + (p.detail || "invalid input"),
    event_not_found: "There is no such event.",
    not_found: "That page or item does not exist.",
    tickets_unavailable: "Someone else just took some of those seats. Please pick others.",
    admission_required: "Please wait for your turn in the queue first.",
    admission_invalid: "Your turn has ended (or is for another event). Rejoin the queue.",
    limit_exceeded: "You have reached the most tickets one person can hold or buy for this event.",
    payment_failed: "Your card was declined. Your seats stay held until the timer runs out: try another card.",
    hold_expired: "Your hold on these seats expired. Please pick seats again.",
    hold_not_found: "That hold no longer exists. Please pick seats again.",
    not_your_hold: "Those seats are held by someone else.",
    backend_unavailable: "The ticket system is busy or briefly unavailable. Please try again in a moment.",
    payload_too_large: "That request was too large.",
    internal_error: "Something went wrong on our side. Please try again.",
    queue_not_found: "This event has no waiting room.",
    queue_disabled: "This event has no waiting room.",
    sold_out: "Sold out: every seat has been sold.",
  };

  class ApiError extends Error {
    constructor(status, problem, retryAfter) {
      super(words(problem, status));
      this.status = status;
      this.problem = problem || {};
      this.code = (problem && problem.code) || (status ? "http_" + status : "network");
      this.retryAfter = retryAfter;
    }
  }

  function words(problem, status) {
    if (!status) return "Cannot reach the server. Check your connection; retrying.";
    const code = problem && problem.code;
    const said = code && WORDS[code];
    if (typeof said === "function") return said(problem);
    if (said) return said;
    if (problem && problem.detail) return problem.detail;
    if (problem && problem.title) return problem.title + ".";
    return "Something went wrong (HTTP " + status + "). Please try again.";
  }

  async function api(method, path, { body, token, headers } = {}) {
    const sent = { Accept: "application/json", ...(headers || {}) };
    if (body !== undefined) sent["Content-Type"] = "application/json";
    if (token) sent.Authorization = "Bearer " + token;
    let resp;
    try {
      resp = await fetch(path, {
        method,
        headers: sent,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (err) {
      throw new ApiError(0, null, 2);
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (err) {
      data = null; // not JSON (a proxy's page): shown by status
    }
    if (!resp.ok) {
      const retry = Number(resp.headers.get("Retry-After")) || null;
      throw new ApiError(resp.status, data, retry);
    }
    return data;
  }

  function claimsOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    } catch (err) {
      return null;
    }
  }

  function randomId(bytes) {
    const raw = new Uint8Array(bytes);
    crypto.getRandomValues(raw);
    return Array.from(raw, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A token for `kind` ("fan" or "admin") in localStorage, for `user` when given (the
  // ?user= of the page), else for whoever signed in last on this browser. In development
  // it comes from POST /auth/dev-token; elsewhere an identity provider puts it there.
  async function signIn(kind, user, roles, { renew = false } = {}) {
    const wanted = user || localStorage.getItem(USER_KEY + kind) || defaultUser(kind);
    const stored = localStorage.getItem(TOKEN_KEY + kind);
    const claims = stored && claimsOf(stored);
    const fresh = claims && claims.exp - RENEW_SECONDS > Date.now() / 1000;
    const hasRoles = claims && roles.every((r) => (claims.roles || []).includes(r));
    if (!renew && fresh && claims.sub === wanted && hasRoles) {
      return { token: stored, user: claims.sub };
    }
    let issued;
    try {
      issued = await api("POST", "/auth/dev-token", { body: { user_id: wanted, roles } });
    } catch (err) {
      if (err.status === 404) {
        throw new ApiError(401, {
          code: "no_dev_tokens",
          detail: "This server does not hand out development sign-ins; sign in first.",
        });
      }
      throw err;
    }
    localStorage.setItem(TOKEN_KEY + kind, issued.access_token);
    localStorage.setItem(USER_KEY + kind, wanted);
    return { token: issued.access_token, user: wanted };
  }

  // The API as a signed-in page calls it: with `session.token`, renewed (once) on a 401.
  function signedIn(kind, roles, session) {
    return async function call(method, path, options = {}) {
      try {
        return await api(method, path, { ...options, token: session.token });
      } catch (err) {
        if (err.status !== 401 || options.retried) throw err;
        ({ token: session.token } = await signIn(kind, session.user, roles, { renew: true }));
        return call(method, path, { ...options, retried: true });
      }
    };
  }

  function defaultUser(kind) {
    return kind === "admin" ? "ops" : "fan-" + randomId(4);
  }

  const money = (cents, currency) => {
    try {
      return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(cents / 100);
    } catch (err) {
      return (cents / 100).toFixed(2) + " " + currency;
    }
  };

  // "about 3 minutes": an estimate, so rounded the way a person would say it.
  function waitWords(seconds) {
    if (seconds === null || seconds === undefined || !isFinite(seconds)) return "estimating…";
    if (seconds <= 0) return "any moment now";
    if (seconds < 60) return "under a minute";
    const minutes = Math.round(seconds / 60);
    if (minutes < 60) return "about " + minutes + (minutes === 1 ? " minute" : " minutes");
    const hours = Math.floor(minutes / 60);
    const rest = minutes % 60;
    return "about " + hours + " h" + (rest ? " " + rest + " min" : "");
  }

  function countdown(untilIso) {
    const left = Math.max(0, Math.round((Date.parse(untilIso) - Date.now()) / 1000));
    const m = Math.floor(left / 60);
    const s = String(left % 60).padStart(2, "0");
    return { left, text: m + ":" + s };
  }

  const clock = (iso) =>
    new Date(iso).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  const count = (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString());

  // el("p", {class: "x", onclick: f}, "text", child): text is always text, never HTML.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const $ = (id) => document.getElementById(id);

  function say(node, message, tone) {
    node.textContent = message || "";
    node.className = node.className.replace(/\b(good|bad)\b/g, "").trim();
    if (tone) node.classList.add(tone);
    node.hidden = !message;
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  return {
    ApiError, api, words, signIn, signedIn, claimsOf, randomId, money, waitWords, countdown,
    clock, count, el, $, say, sleep,
  };
})();
