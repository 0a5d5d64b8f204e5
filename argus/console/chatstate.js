// What the chat shows, built from runtime messages: threads, their items, running turns and
// pending approvals. Pure logic (no DOM), tested by `node --test tests/js`.
//
// Items are keyed by id, so the same item arriving twice (replay after a reload, then
// thread/read) is shown once; a finished item's text from `item/completed` or from a
// finished turn in thread/read is authoritative and replaces what the deltas built.

const MAX_THREADS_KEPT = 30; // threads whose items stay in memory (least recently used go)

/** One item as the console shows it, from a runtime item object. */
export function viewItem(raw, turnId, done) {
  const base = { id: raw.id, turnId, done, raw, rev: 0 };
  switch (raw.type) {
    case "userMessage":
      return { ...base, kind: "user", text: userText(raw.content) };
    case "agentMessage":
      return { ...base, kind: "agent", text: raw.text || "" };
    case "reasoning":
      return { ...base, kind: "reasoning", text: joinParts(raw.summary) || joinParts(raw.content) };
    case "commandExecution":
      return {
        ...base,
        kind: "command",
        title: Array.isArray(raw.command) ? raw.command.join(" ") : raw.command || "",
        text: raw.aggregatedOutput || "",
        status: raw.status,
        exitCode: raw.exitCode,
      };
    case "fileChange":
      return {
        ...base,
        kind: "fileChange",
        title: (raw.changes || []).map((c) => c.path).join(", "),
        text: (raw.changes || []).map((c) => `${(c.kind && c.kind.type) || c.kind || "change"}: ${c.path}\n${c.diff || ""}`).join("\n"),
        status: raw.status,
      };
    case "mcpToolCall":
      return {
        ...base,
        kind: "tool",
        title: `${raw.server || ""} · ${raw.tool || ""}`,
        text: raw.error ? String(raw.error.message || raw.error) : raw.result ? JSON.stringify(raw.result, null, 2) : "",
        status: raw.status,
      };
    case "webSearch":
      return { ...base, kind: "tool", title: `search · ${raw.query || ""}`, text: "", status: raw.status };
    case "plan":
      return { ...base, kind: "reasoning", text: raw.text || "" };
    default:
      return { ...base, kind: "other", title: raw.type || "item", text: JSON.stringify(raw, null, 2) };
  }
}

function joinParts(parts) {
  if (!Array.isArray(parts)) return "";
  return parts.map((p) => (typeof p === "string" ? p : p && p.text) || "").filter(Boolean).join("\n\n");
}

function userText(content) {
  if (!Array.isArray(content)) return "";
  return content
    .map((c) => {
      if (c.type === "text") return c.text;
      if (c.type === "image") return `[image] ${c.url || ""}`;
      if (c.type === "localImage") return `[local image] ${c.path || ""}`;
      return `[${c.type}]`;
    })
    .join("\n");
}

const DELTA_FIELD = {
  "item/agentMessage/delta": "text",
  "item/reasoning/summaryTextDelta": "text",
  "item/reasoning/textDelta": "text",
  "item/plan/delta": "text",
  "item/commandExecution/outputDelta": "text",
  "item/fileChange/outputDelta": "text",
};
const DELTA_KIND = {
  "item/agentMessage/delta": "agent",
  "item/reasoning/summaryTextDelta": "reasoning",
  "item/reasoning/textDelta": "reasoning",
  "item/plan/delta": "reasoning",
  "item/commandExecution/outputDelta": "command",
  "item/fileChange/outputDelta": "fileChange",
};

/** Whether a server request is an approval the console shows as a card. */
export function isApproval(msg) {
  return msg && msg.id != null && typeof msg.method === "string" && msg.method.endsWith("/requestApproval");
}

const DEFAULT_DECISIONS = ["accept", "acceptForSession", "decline", "cancel"];
const LABELS = { accept: "Accept", acceptForSession: "Accept for session", decline: "Decline", cancel: "Cancel" };

/** The buttons of an approval card: [{label, decision}] from `availableDecisions`. */
export function decisionsOf(params) {
  const listed = Array.isArray(params && params.availableDecisions) ? params.availableDecisions : DEFAULT_DECISIONS;
  return listed.map((decision) => {
    const key = typeof decision === "string" ? decision : Object.keys(decision || {})[0] || "decision";
    const label = LABELS[key] || key.replace(/([a-z])([A-Z])/g, "$1 $2").replace(/^./, (c) => c.toUpperCase());
    return { label, decision };
  });
}

/** A thread's items: an ordered list plus an index by id. */
class ItemList {
  constructor() {
    this.list = [];
    this.byId = new Map();
    this.rev = 0;
  }

  get(id) {
    return this.byId.get(id);
  }

  put(item) {
    const existing = this.byId.get(item.id);
    if (existing) {
      Object.assign(existing, item, { rev: existing.rev + 1 });
      this.rev += 1;
      return existing;
    }
    this.byId.set(item.id, item);
    this.list.push(item);
    this.rev += 1;
    return item;
  }

  replaceAll(items) {
    this.list = items;
    this.byId = new Map(items.map((i) => [i.id, i]));
    this.rev += 1;
  }
}

export class ChatStore {
  constructor() {
    this.threads = []; // summaries from thread/list, newest first
    this.nextCursor = null;
    this.items = new Map(); // threadId -> ItemList (insertion order = recency)
    this.turns = new Map(); // threadId -> {turnId, stopping}
    this.approvals = new Map(); // JSON(id) -> {id, method, params, threadId}
    this.notices = []; // short system notices (runtime exited, gap resynced), newest last
    this.needsResync = false;
  }

  itemsOf(threadId, create = true) {
    let list = this.items.get(threadId);
    if (list) {
      this.items.delete(threadId); // keep the map in recency order
      this.items.set(threadId, list);
      return list;
    }
    if (!create) return null;
    list = new ItemList();
    this.items.set(threadId, list);
    while (this.items.size > MAX_THREADS_KEPT) this.items.delete(this.items.keys().next().value);
    return list;
  }

  notice(text) {
    this.notices.push({ at: Date.now(), text });
    if (this.notices.length > 20) this.notices.shift();
  }

  /** Threads from a thread/list page (`append` for the next page). */
  setThreads(data, nextCursor, append) {
    const seen = new Set(append ? this.threads.map((t) => t.id) : []);
    const fresh = (data || []).filter((t) => !seen.has(t.id));
    this.threads = append ? [...this.threads, ...fresh] : fresh;
    this.nextCursor = nextCursor || null;
  }

  /** History from thread/read (`includeTurns`), merged with what streamed in already. */
  applyHistory(thread) {
    const list = this.itemsOf(thread.id);
    const merged = [];
    const placed = new Set();
    let running = null;
    for (const turn of thread.turns || []) {
      const finished = turn.status && turn.status !== "inProgress";
      if (!finished) running = turn.id;
      for (const raw of turn.items || []) {
        if (!raw || raw.id == null || placed.has(raw.id)) continue;
        const existing = list.get(raw.id);
        const item = finished || !existing ? viewItem(raw, turn.id, finished || raw.type === "userMessage") : existing;
        if (existing && item !== existing) item.rev = existing.rev + 1;
        merged.push(item);
        placed.add(raw.id);
      }
    }
    for (const item of list.list) if (!placed.has(item.id)) merged.push(item); // still streaming
    list.replaceAll(merged);
    if (running && !this.turns.has(thread.id)) this.turns.set(thread.id, { turnId: running, stopping: false });
    this.upsertThread(thread);
  }

  upsertThread(thread) {
    const summary = { id: thread.id, preview: thread.preview, updatedAt: thread.updatedAt, createdAt: thread.createdAt };
    const at = this.threads.findIndex((t) => t.id === thread.id);
    if (at >= 0) this.threads[at] = { ...this.threads[at], ...summary, preview: summary.preview || this.threads[at].preview };
    else this.threads.unshift(summary);
  }

  /** A turn this console just started (before turn/started arrives), so Stop shows at once. */
  turnStarted(threadId, turnId) {
    this.turns.set(threadId, { turnId, stopping: false });
  }

  /** Apply one runtime message; returns true when something shown changed. */
  apply(msg) {
    const method = msg.method;
    if (!method) return false;
    const p = msg.params || {};
    if (isApproval(msg)) {
      const key = JSON.stringify(msg.id);
      if (this.approvals.has(key)) return false; // re-delivered after a reconnect: one card
      this.approvals.set(key, { id: msg.id, method, params: p, threadId: p.threadId });
      return true;
    }
    if (msg.id != null) return false; // another server request: shown in the frame log only
    const field = DELTA_FIELD[method];
    if (field) return this._delta(method, p, field);
    switch (method) {
      case "thread/started":
        if (p.thread) this.upsertThread(p.thread);
        return true;
      case "turn/started":
        if (p.threadId && p.turn) {
          const current = this.turns.get(p.threadId);
          this.turns.set(p.threadId, { turnId: p.turn.id, stopping: current ? current.stopping : false });
        }
        return true;
      case "turn/completed":
        return this._turnCompleted(p);
      case "item/started":
      case "item/completed":
        return this._item(p, method === "item/completed");
      case "serverRequest/resolved":
        return this.approvals.delete(JSON.stringify(p.requestId));
      case "argus/replay/gap":
        this.needsResync = true;
        this.notice(`Missed messages ${p.from}–${p.to} while away; reloaded the thread.`);
        return true;
      case "argus/runtime/exited":
        this.turns.clear();
        this.approvals.clear();
        this.notice(`The runtime exited (code ${p.code ?? "?"}${p.signal ? `, signal ${p.signal}` : ""}); it restarts on reconnect.`);
        return true;
      case "argus/turn/stalled":
        this.notice(`A turn was interrupted after ${Math.round(p.idleS || 0)} s of silence.`);
        return true;
      default:
        return false;
    }
  }

  _item(p, done) {
    const raw = p.item;
    if (!raw || raw.id == null || !p.threadId) return false;
    const list = this.itemsOf(p.threadId);
    const existing = list.get(raw.id);
    if (existing && existing.done && !done) return false; // a late or replayed start
    const fresh = viewItem(raw, p.turnId, done);
    if (existing && !done) fresh.text = existing.text || fresh.text; // keep streamed text
    list.put(fresh);
    if (done) for (const [key, a] of this.approvals) if (a.params.itemId === raw.id) this.approvals.delete(key);
    return true;
  }

  _delta(method, p, field) {
    if (!p.threadId || p.itemId == null || typeof p.delta !== "string") return false;
    const list = this.itemsOf(p.threadId);
    let item = list.get(p.itemId);
    if (item && item.done) return false; // already final (history or item/completed)
    if (!item) {
      item = list.put({ id: p.itemId, turnId: p.turnId, done: false, rev: 0, kind: DELTA_KIND[method], text: "", partial: true, raw: {} });
    }
    if (method === "item/reasoning/summaryTextDelta" && item.summaryIndex != null && p.summaryIndex !== item.summaryIndex) item[field] += "\n\n";
    if (p.summaryIndex != null) item.summaryIndex = p.summaryIndex;
    item[field] += p.delta;
    item.rev += 1;
    list.rev += 1;
    return true;
  }

  _turnCompleted(p) {
    const turnId = p.turn && p.turn.id;
    const current = this.turns.get(p.threadId);
    if (current && (!turnId || current.turnId === turnId)) this.turns.delete(p.threadId);
    const list = this.itemsOf(p.threadId, false);
    if (list) {
      for (const raw of (p.turn && p.turn.items) || []) if (raw && raw.id != null) list.put(viewItem(raw, turnId, true));
      for (const item of list.list) if (item.turnId === turnId && !item.done) Object.assign(item, { done: true, rev: item.rev + 1 });
      list.rev += 1;
    }
    for (const [key, a] of this.approvals) if (a.params.turnId === turnId) this.approvals.delete(key);
    return true;
  }
}
