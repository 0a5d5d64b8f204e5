// Messages typed while the console is disconnected. Each waits here (and in sessionStorage,
// so a reload keeps it) until the connection is back, then is taken out exactly once before
// it is sent: a message is never sent twice, even if the connection drops again mid-send.

export const OUTBOX_LIMIT = 20; // more is refused with a visible message, nothing is dropped

export class Outbox {
  constructor(storage, key = "argus.outbox") {
    this.storage = storage;
    this.key = key;
    this.entries = [];
    try {
      const saved = JSON.parse((storage && storage.getItem(key)) || "[]");
      if (Array.isArray(saved)) this.entries = saved.filter((e) => e && typeof e.text === "string").slice(0, OUTBOX_LIMIT);
    } catch {
      this.entries = [];
    }
  }

  _save() {
    if (this.storage) this.storage.setItem(this.key, JSON.stringify(this.entries));
  }

  /** Queue a message for `threadId` (null: a new thread); false when the outbox is full. */
  add(threadId, text) {
    if (this.entries.length >= OUTBOX_LIMIT) return false;
    this.entries.push({ threadId, text, at: Date.now() });
    this._save();
    return true;
  }

  /** The oldest entry for a thread that is free to take it, removed from the outbox. */
  take(isBusy) {
    const at = this.entries.findIndex((e) => !isBusy(e.threadId));
    if (at < 0) return null;
    const [entry] = this.entries.splice(at, 1);
    this._save();
    return entry;
  }

  get size() {
    return this.entries.length;
  }
}
