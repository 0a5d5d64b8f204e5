// The console's state and actions: the token, the session, the connection, the chat store,
// the outbox. Views read it and call its methods; `changed()` asks for one redraw on the
// next animation frame, however many messages arrived before it.

import { Api, ApiError, savedToken, saveToken } from "./api.js";
import { ChatStore } from "./chatstate.js";
import { Connection, tokenFitsSubprotocol } from "./rpc.js";
import { Outbox } from "./outbox.js";

export const CONSOLE_VERSION = "0.1.0";
const THREAD_PAGE = 25;
const SESSION_KEY = "argus.session";
const THREAD_KEY = "argus.thread";
const RESUME_KEY = "argus.resume";
const RETRY_MS = 3000; // a gateway unreachable at start-up is asked again this often

/** The gateway's default session: the one the codex TUI (`codex --remote`) and Telegram use. */
export const DEFAULT_SESSION = "default";

/**
 * Which session the console opens: the one picked in this tab if it still exists, else the
 * default session (the gateway creates it on first use), so that the browser, the codex TUI
 * and Telegram meet the same agent. This is the only place that decides.
 */
export function chooseSession(sessions, picked) {
  if (picked && sessions.some((s) => s.sessionId === picked)) return picked;
  // The default session, which the codex TUI and Telegram meet too (created on first use).
  return DEFAULT_SESSION;
}

export class Controller {
  constructor() {
    this.token = savedToken();
    this.api = new Api(this.token);
    this.store = new ChatStore();
    this.outbox = new Outbox(sessionStorage);
    this.auth = "checking"; // checking | needed | ok
    this.authError = "";
    this.info = null;
    this.status = "offline";
    this.sessionId = null;
    this.currentThread = sessionStorage.getItem(THREAD_KEY) || null;
    this.resumed = new Set(); // threads resumed on this connection
    this.turnStartSeq = new Map(); // threadId -> argusSeq just before its running turn began
    this.error = "";
    this.sent = 0; // messages sent: the message list follows the bottom again after each
    this.listeners = new Set();
    this.scheduled = false;
    this.stats = { redraws: 0, messages: 0 };
    this.conn = null;
  }

  // -- redraws -----------------------------------------------------------------------------

  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed() {
    if (this.scheduled) return;
    this.scheduled = true;
    requestAnimationFrame(() => {
      this.scheduled = false;
      this.stats.redraws += 1;
      this._saveResume();
      for (const fn of this.listeners) fn();
    });
  }

  // -- start-up and sign-in ----------------------------------------------------------------

  async start() {
    try {
      this.info = await this.api.get("/info");
      this.auth = "ok";
    } catch (err) {
      if (!(err instanceof ApiError)) {
        this.error = `Gateway unreachable (${err.message}); retrying.`;
        this.changed();
        setTimeout(() => this.start(), RETRY_MS);
        return;
      }
      this.auth = err.status === 401 ? "needed" : "ok";
      if (this.auth === "needed") this.authError = this.token ? "That token was refused." : "";
      else this.error = `GET /info failed: ${err.message}`;
      this.changed();
      if (this.auth === "needed") return;
    }
    this.error = "";
    this.changed();
    await this.openSession();
  }

  async signIn(token) {
    token = token.trim();
    if (token && !tokenFitsSubprotocol(token)) {
      this.authError = "This token has characters a WebSocket subprotocol cannot carry.";
      this.changed();
      return;
    }
    this.token = token;
    this.api = new Api(token);
    saveToken(token);
    this.auth = "checking";
    this.authError = "";
    this.changed();
    await this.start();
  }

  signOut() {
    saveToken("");
    if (this.conn) this.conn.stop();
    this.token = "";
    this.api = new Api("");
    this.auth = "needed";
    this.changed();
  }

  // -- sessions ----------------------------------------------------------------------------

  async listSessions() {
    return (await this.api.get("/sessions")).sessions || [];
  }

  /** Open the session `chooseSession` picks (resuming after a reload), or a new one. */
  async openSession() {
    let sessions = [];
    try {
      sessions = await this.listSessions();
    } catch (err) {
      this.error = `Cannot list sessions (${err.message}); retrying.`;
      this.changed();
      if (!(err instanceof ApiError && err.status === 401)) setTimeout(() => this.openSession(), RETRY_MS);
      return;
    }
    const id = chooseSession(sessions, sessionStorage.getItem(SESSION_KEY));
    let since = 0;
    try {
      const resume = JSON.parse(sessionStorage.getItem(RESUME_KEY) || "null");
      if (resume && resume.sessionId === id) since = resume.seq;
    } catch {
      since = 0;
    }
    this.connect(id, since);
  }

  /** Connect to session `id` (null: create a new one). */
  connect(id, since = 0) {
    if (this.conn) this.conn.stop();
    if (id !== this.sessionId) this._resetSession();
    this.sessionId = id;
    this.conn = new Connection({
      base: `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}`,
      token: this.token,
      WebSocketImpl: WebSocket,
      onEvent: (type, data) => this._onEvent(type, data),
    });
    this.conn.start(id, since);
  }

  switchSession(id) {
    sessionStorage.setItem(SESSION_KEY, id);
    sessionStorage.removeItem(THREAD_KEY);
    this.currentThread = null;
    this.connect(id, 0);
  }

  createSession() {
    sessionStorage.removeItem(THREAD_KEY);
    this.currentThread = null;
    this.connect(null, 0);
  }

  async deleteSession(id) {
    await this.api.delete(`/sessions/${encodeURIComponent(id)}`);
    if (id === this.sessionId) {
      sessionStorage.removeItem(SESSION_KEY);
      this.currentThread = null;
      this.sessionId = null;
      await this.openSession();
    }
  }

  _resetSession() {
    this.store = new ChatStore();
    this.resumed.clear();
    this.turnStartSeq.clear();
  }

  /** Drop the connection on purpose (Health page); `reconnect` resumes with `since`. */
  disconnect() {
    if (this.conn) this.conn.stop();
    this.changed();
  }

  reconnect() {
    if (this.conn) this.conn.resume();
  }

  // -- connection events -------------------------------------------------------------------

  _onEvent(type, data) {
    if (type === "status") {
      this.status = data;
    } else if (type === "session") {
      this._onSession(data);
    } else if (type === "message") {
      this._onMessage(data);
    } else if (type === "closed") {
      if (!data.opened) this._checkAuth();
    } else if (type === "stopped") {
      if (/unauthorized/i.test(data.reason)) {
        this.auth = "needed";
        this.authError = "That token was refused.";
      } else {
        this.store.notice(`Session closed: ${data.reason || data.code}. Opening another.`);
        sessionStorage.removeItem(SESSION_KEY);
        sessionStorage.removeItem(THREAD_KEY);
        this.currentThread = null;
        this.sessionId = null;
        this.openSession();
      }
    }
    this.changed();
  }

  async _checkAuth() {
    try {
      await this.api.get("/info");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        if (this.conn) this.conn.stop();
        this.auth = "needed";
        this.authError = "That token was refused.";
        this.changed();
      }
    }
  }

  async _onSession(frame) {
    if (this.sessionId && frame.id !== this.sessionId) this._resetSession();
    this.sessionId = frame.id;
    sessionStorage.setItem(SESSION_KEY, frame.id);
    this.resumed.clear();
    try {
      await this.conn.request("initialize", {
        clientInfo: { name: "argus_console", title: "Argus console", version: CONSOLE_VERSION },
      });
      this.conn.notify("initialized", {});
      await this.loadThreads(false);
      if (!this.currentThread && this.store.threads.length) this.currentThread = this.store.threads[0].id;
      if (this.currentThread) await this.readThread(this.currentThread);
      this.store.needsResync = false;
      this.error = "";
    } catch (err) {
      if (err.message !== "disconnected") this.error = err.message;
    }
    this.changed();
    this.flushOutbox();
  }

  _onMessage(msg) {
    this.stats.messages += 1;
    if (msg.method === "turn/started" && msg.params && typeof msg.argusSeq === "number") {
      if (!this.turnStartSeq.has(msg.params.threadId)) this.turnStartSeq.set(msg.params.threadId, msg.argusSeq - 1);
    }
    const shown = this.store.apply(msg);
    if (msg.method === "turn/completed" && msg.params) {
      this.turnStartSeq.delete(msg.params.threadId);
      this._refreshThreadsSoon();
      this.flushOutbox();
    }
    if (msg.method === "argus/runtime/exited") {
      this.resumed.clear();
      this.turnStartSeq.clear();
    }
    if (this.store.needsResync) this.resync();
    if (shown) this.changed();
  }

  /** After a replay gap: reload the thread list and the open thread instead of guessing. */
  async resync() {
    this.store.needsResync = false;
    try {
      await this.loadThreads(false);
      if (this.currentThread) await this.readThread(this.currentThread);
    } catch (err) {
      if (err.message !== "disconnected") this.error = err.message;
    }
    this.changed();
  }

  _saveResume() {
    if (!this.conn || !this.sessionId) return;
    const starts = [...this.turnStartSeq.values()];
    const seq = starts.length ? Math.min(...starts) : this.conn.seq.last;
    sessionStorage.setItem(RESUME_KEY, JSON.stringify({ sessionId: this.sessionId, seq }));
  }

  _refreshThreadsSoon() {
    clearTimeout(this._refreshTimer);
    this._refreshTimer = setTimeout(() => this.loadThreads(false).catch(() => {}), 300);
  }

  // -- threads -----------------------------------------------------------------------------

  async loadThreads(more) {
    const params = { limit: THREAD_PAGE };
    if (more && this.store.nextCursor) params.cursor = this.store.nextCursor;
    const result = await this.conn.request("thread/list", params);
    if (more) this.store.setThreads(result.data, result.nextCursor, true);
    else {
      // The first page replaces the list, but threads already paged in stay below it.
      const older = this.store.threads.filter((t) => !(result.data || []).some((d) => d.id === t.id));
      this.store.setThreads([...(result.data || []), ...older], this.store.nextCursor && older.length ? this.store.nextCursor : result.nextCursor, false);
    }
    this.changed();
  }

  async readThread(threadId) {
    const result = await this.conn.request("thread/read", { threadId, includeTurns: true });
    this.store.applyHistory(result.thread);
    this.changed();
  }

  async openThread(threadId) {
    this.currentThread = threadId;
    sessionStorage.setItem(THREAD_KEY, threadId);
    this.changed();
    try {
      await this.readThread(threadId);
    } catch (err) {
      this.error = err.message;
      this.changed();
    }
  }

  async newThread() {
    const result = await this.conn.request("thread/start", {});
    this.store.upsertThread(result.thread);
    this.resumed.add(result.thread.id);
    this.currentThread = result.thread.id;
    sessionStorage.setItem(THREAD_KEY, result.thread.id);
    this.store.itemsOf(result.thread.id);
    this.changed();
    return result.thread.id;
  }

  async _ensureResumed(threadId) {
    if (this.resumed.has(threadId)) return;
    try {
      await this.conn.request("thread/resume", { threadId });
    } catch (err) {
      if (err.message === "disconnected") throw err;
    }
    this.resumed.add(threadId);
  }

  // -- turns -------------------------------------------------------------------------------

  /** Send `text` on the open thread now, or keep it in the outbox until reconnected. */
  async send(text) {
    if (!text.trim()) return true;
    this.sent += 1;
    if (!this.conn || !this.conn.connected) {
      const ok = this.outbox.add(this.currentThread, text);
      if (!ok) this.error = "The outbox is full: wait for the connection to come back.";
      this.changed();
      return ok;
    }
    try {
      await this._startTurn(this.currentThread, text);
    } catch (err) {
      if (err.message === "disconnected") this.outbox.add(this.currentThread, text);
      else this.error = `Could not send: ${err.message}`;
    }
    this.changed();
    return true;
  }

  async _startTurn(threadId, text) {
    if (!threadId) threadId = await this.newThread();
    await this._ensureResumed(threadId);
    const input = [{ type: "text", text, text_elements: [] }];
    const result = await this.conn.request("turn/start", { threadId, input });
    if (result && result.turn && !this.store.turns.has(threadId)) this.store.turnStarted(threadId, result.turn.id);
    this.changed();
  }

  /** Send what waited in the outbox: each entry once, one turn per thread at a time. */
  async flushOutbox() {
    if (this._flushing) return;
    this._flushing = true;
    try {
      while (this.conn && this.conn.connected) {
        const entry = this.outbox.take((threadId) => threadId != null && this.store.turns.has(threadId));
        if (!entry) break;
        try {
          await this._startTurn(entry.threadId || this.currentThread, entry.text);
        } catch (err) {
          this.error = `Could not send a queued message: ${err.message}`;
        }
        this.changed();
      }
    } finally {
      this._flushing = false;
    }
  }

  async stop() {
    const threadId = this.currentThread;
    const turn = threadId && this.store.turns.get(threadId);
    if (!turn || turn.stopping) return;
    turn.stopping = true;
    this.changed();
    try {
      await this.conn.request("turn/interrupt", { threadId, turnId: turn.turnId });
    } catch (err) {
      turn.stopping = false;
      this.error = `Could not stop: ${err.message}`;
      this.changed();
    }
  }

  /** Answer an approval card; every other client's card closes when the runtime resolves it. */
  answer(approval, decision) {
    if (this.conn.respond(approval.id, { decision })) {
      this.store.approvals.delete(JSON.stringify(approval.id));
    } else this.error = "Not connected: the approval stays pending until you are back.";
    this.changed();
  }
}
