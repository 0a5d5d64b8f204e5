// The console's connection to /ws: JSON-RPC requests, sequence tracking, reconnect with
// backoff and `since`. Pure logic (no DOM, no vendor code): the WebSocket constructor and the
// timers are injected, so `node --test tests/js` exercises it without a browser.

export const PROTOCOL = "argus.v1";

// Characters a WebSocket subprotocol may hold (RFC 7230 "token"); a token outside this set
// cannot travel as `bearer.<token>`.
const TOKEN_CHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Whether `token` can be offered as the `bearer.<token>` subprotocol. */
export function tokenFitsSubprotocol(token) {
  return TOKEN_CHARS.test(token);
}

/** The subprotocols the console offers: `argus.v1`, plus the token when auth is on. */
export function subprotocols(token) {
  return token ? [PROTOCOL, `bearer.${token}`] : [PROTOCOL];
}

/** The /ws URL for a session: attach (`session`), resume (`since`), or create (neither). */
export function wsUrl(base, sessionId, since) {
  const query = new URLSearchParams();
  if (sessionId) query.set("session", sessionId);
  if (sessionId && since != null && since > 0) query.set("since", String(since));
  else query.set("seq", "1");
  return `${base}/ws?${query}`;
}

/** Exponential backoff with jitter: 0.5 s, 1 s, 2 s … capped at `max` ms. */
export class Backoff {
  constructor({ base = 500, max = 15000, factor = 2, random = Math.random } = {}) {
    Object.assign(this, { base, max, factor, random });
    this.attempts = 0;
  }

  /** The next delay in ms (between half and all of the exponential step). */
  next() {
    const step = Math.min(this.max, this.base * this.factor ** this.attempts);
    this.attempts += 1;
    return Math.round(step / 2 + (this.random() * step) / 2);
  }

  reset() {
    this.attempts = 0;
  }
}

/**
 * The highest `argusSeq` processed. Replay after `since` never repeats a number, but a
 * coalesced delta covers `argusSeqFrom`..`argusSeq`; anything at or below `last` is a
 * duplicate and is dropped.
 */
export class SeqTracker {
  constructor(last = 0) {
    this.last = last;
  }

  /** True if `msg` is new (or carries no number); advances `last`. */
  accept(msg) {
    const seq = msg && msg.argusSeq;
    if (typeof seq !== "number") return true;
    if (seq <= this.last) return false;
    this.last = seq;
    return true;
  }
}

/** A bounded log of raw frames (the Health page's view of the wire). */
export class FrameLog {
  constructor(limit = 300, maxChars = 2000) {
    this.limit = limit;
    this.maxChars = maxChars;
    this.entries = [];
    this.total = 0;
  }

  add(dir, text) {
    this.total += 1;
    const shown = text.length > this.maxChars ? `${text.slice(0, this.maxChars)}… (${text.length} chars)` : text;
    this.entries.push({ n: this.total, dir, at: Date.now(), text: shown });
    if (this.entries.length > this.limit) this.entries.splice(0, this.entries.length - this.limit);
  }

  clear() {
    this.entries = [];
  }
}

const MAX_PENDING = 500; // requests in flight; more are refused at once
const OFFLINE_AFTER = 4; // failed attempts before the pill says "offline"

/**
 * One logical connection to a session that survives disconnects.
 *
 * Events (`onEvent(type, data)`): `status` (connecting | connected | reconnecting | offline),
 * `session` (the argus/session frame, on every (re)connect), `message` (every new frame),
 * `closed` ({code, reason, opened}), `stopped`.
 */
export class Connection {
  constructor({ base, token, WebSocketImpl, timers, onEvent, backoff, requestTimeoutMs = 120000 }) {
    this.base = base;
    this.token = token;
    this.WebSocketImpl = WebSocketImpl;
    this.timers = timers || { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t) };
    this.onEvent = onEvent || (() => {});
    this.backoff = backoff || new Backoff();
    this.requestTimeoutMs = requestTimeoutMs;
    this.seq = new SeqTracker();
    this.frames = new FrameLog();
    this.pending = new Map();
    this.nextId = 1;
    this.ws = null;
    this.sessionId = null;
    this.status = "offline";
    this.failures = 0;
    this.retryTimer = null;
    this.running = false;
  }

  /** Start (or restart) on `sessionId` (null: create one), resuming after `since`. */
  start(sessionId, since = 0) {
    this.stop();
    this.sessionId = sessionId;
    this.seq = new SeqTracker(since || 0);
    this.running = true;
    this.failures = 0;
    this.backoff.reset();
    this._open();
  }

  /** Close for good (until the next `start`/`resume`); pending requests fail. */
  stop() {
    this.running = false;
    if (this.retryTimer != null) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close(1000, "Console closed the connection");
      } catch {
        // already closed
      }
    }
    this._failPending("disconnected");
    this._status("offline");
  }

  /** Reconnect now with `since` (after `stop`, or to skip the backoff wait). */
  resume() {
    const sessionId = this.sessionId;
    const since = this.seq.last;
    this.start(sessionId, since);
  }

  get connected() {
    return this.status === "connected";
  }

  _status(status) {
    if (status === this.status) return;
    this.status = status;
    this.onEvent("status", status);
  }

  _open() {
    if (this.failures === 0) this._status("connecting");
    let ws;
    try {
      ws = new this.WebSocketImpl(wsUrl(this.base, this.sessionId, this.seq.last), subprotocols(this.token));
    } catch (err) {
      this.onEvent("closed", { code: 0, reason: String(err && err.message), opened: false });
      this._scheduleRetry();
      return;
    }
    this.ws = ws;
    let opened = false;
    let greeted = false;
    ws.onopen = () => {
      opened = true;
    };
    ws.onmessage = (event) => {
      if (this.ws !== ws) return;
      const text = typeof event.data === "string" ? event.data : "";
      this.frames.add("in", text);
      let msg;
      try {
        msg = JSON.parse(text);
      } catch {
        return;
      }
      if (!greeted) {
        if (msg.method !== "argus/session") return;
        greeted = true;
        this.sessionId = msg.params.id;
        this.failures = 0;
        this.backoff.reset();
        this._status("connected");
        this.onEvent("session", msg.params);
        return;
      }
      if (!this.seq.accept(msg)) return;
      if (msg.id != null && msg.method == null && this._settle(msg)) return;
      this.onEvent("message", msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return; // a socket we already replaced: its close is old news
      this.ws = null;
      this._failPending("disconnected");
      this.onEvent("closed", { code: event.code, reason: event.reason || "", opened });
      if (!this.running) return;
      if (event.code === 1008 || (event.code === 1001 && /deleted/i.test(event.reason || ""))) {
        this.running = false; // unauthorized, unknown or deleted session: retrying cannot help
        this._status("offline");
        this.onEvent("stopped", { code: event.code, reason: event.reason || "" });
        return;
      }
      this.failures += 1;
      this._scheduleRetry();
    };
    ws.onerror = () => {};
  }

  _scheduleRetry() {
    if (!this.running) return;
    this._status(this.failures >= OFFLINE_AFTER ? "offline" : "reconnecting");
    const delay = this.backoff.next();
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = null;
      if (this.running) this._open();
    }, delay);
  }

  _settle(msg) {
    const entry = this.pending.get(msg.id);
    if (!entry) return false;
    this.pending.delete(msg.id);
    this.timers.clearTimeout(entry.timer);
    if (msg.error) {
      const err = new Error(msg.error.message || "Request failed");
      err.code = msg.error.code;
      entry.reject(err);
    } else entry.resolve(msg.result);
    return true;
  }

  _failPending(reason) {
    for (const entry of this.pending.values()) {
      this.timers.clearTimeout(entry.timer);
      entry.reject(new Error(reason));
    }
    this.pending.clear();
  }

  /** Send one JSON message; false when not connected (nothing is queued here). */
  send(obj) {
    if (!this.ws || this.status !== "connected") return false;
    const text = JSON.stringify(obj);
    this.frames.add("out", text);
    this.ws.send(text);
    return true;
  }

  /** A request; resolves with its result, rejects with its error or on disconnect. */
  request(method, params = {}, { timeoutMs } = {}) {
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new Error("Too many requests in flight"));
    const id = `c${this.nextId++}`;
    return new Promise((resolve, reject) => {
      if (!this.send({ id, method, params })) {
        reject(new Error("disconnected"));
        return;
      }
      const timer = this.timers.setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method}: no answer in ${(timeoutMs || this.requestTimeoutMs) / 1000} s`));
      }, timeoutMs || this.requestTimeoutMs);
      this.pending.set(id, { resolve, reject, timer });
    });
  }

  notify(method, params = {}) {
    return this.send({ method, params });
  }

  /** Answer a server request (an approval) with exactly the id it came with. */
  respond(id, result) {
    return this.send({ id, result });
  }
}
