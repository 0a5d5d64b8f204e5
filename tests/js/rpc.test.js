// Pure logic of the console, under `node --test tests/js` (run by `make test` when node is
// installed): the connection's reconnect/resume, sequence tracking and backoff, the outbox,
// and the chat store's merging of replayed messages with thread/read history.

import { test } from "node:test";
import assert from "node:assert/strict";

import { Backoff, Connection, SeqTracker, subprotocols, tokenFitsSubprotocol, wsUrl } from "../../argus/console/rpc.js";
import { Outbox, OUTBOX_LIMIT } from "../../argus/console/outbox.js";
import { ChatStore, decisionsOf } from "../../argus/console/chatstate.js";

class FakeSocket {
  static all = [];
  constructor(url, protocols) {
    Object.assign(this, { url, protocols, sent: [] });
    FakeSocket.all.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {}
  serverSends(obj) {
    this.onmessage({ data: JSON.stringify(obj) });
  }
  drop(code = 1006, reason = "") {
    this.onclose({ code, reason });
  }
}

function manualTimers() {
  const queue = [];
  return {
    queue,
    setTimeout: (fn, ms) => (queue.push({ fn, ms }), queue.length),
    clearTimeout: (id) => {
      if (queue[id - 1]) queue[id - 1].fn = () => {};
    },
    runNext() {
      const next = queue.find((t) => !t.done && t.ms < 100000);
      next.done = true;
      next.fn();
      return next.ms;
    },
  };
}

test("urls and subprotocols", () => {
  assert.equal(wsUrl("ws://h", null, 0), "ws://h/ws?seq=1");
  assert.equal(wsUrl("ws://h", "abc", 0), "ws://h/ws?session=abc&seq=1");
  assert.equal(wsUrl("ws://h", "abc", 42), "ws://h/ws?session=abc&since=42");
  assert.deepEqual(subprotocols(""), ["argus.v1"]);
  assert.deepEqual(subprotocols("t0k"), ["argus.v1", "bearer.t0k"]);
  assert.ok(tokenFitsSubprotocol("a1b2-c3_d4.e5"));
  assert.ok(!tokenFitsSubprotocol("has space"));
  assert.ok(!tokenFitsSubprotocol("a,b"));
});

test("backoff grows, is capped, and resets", () => {
  const b = new Backoff({ base: 500, max: 4000, random: () => 1 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 4000]);
  b.reset();
  assert.equal(b.next(), 500);
  const low = new Backoff({ base: 500, random: () => 0 });
  assert.equal(low.next(), 250); // jitter: at least half the step
});

test("sequence tracker drops what it has seen", () => {
  const seq = new SeqTracker(10);
  assert.ok(!seq.accept({ argusSeq: 10 }));
  assert.ok(seq.accept({ argusSeq: 12 }));
  assert.ok(!seq.accept({ argusSeq: 11 }));
  assert.ok(seq.accept({ id: 1, result: {} })); // responses carry no number
  assert.equal(seq.last, 12);
});

test("the connection resumes with since after a drop and fails pending requests", async () => {
  FakeSocket.all = [];
  const timers = manualTimers();
  const events = [];
  const conn = new Connection({ base: "ws://h", token: "tk", WebSocketImpl: FakeSocket, timers, onEvent: (t, d) => events.push([t, d]) });
  conn.start("s1", 0);
  const first = FakeSocket.all[0];
  assert.deepEqual(first.protocols, ["argus.v1", "bearer.tk"]);
  first.serverSends({ method: "argus/session", params: { id: "s1", seq: 5 } });
  assert.equal(conn.status, "connected");
  const pending = conn.request("thread/list", {});
  first.serverSends({ argusSeq: 6, method: "turn/started", params: {} });
  first.serverSends({ argusSeq: 9, method: "item/agentMessage/delta", params: {} });
  first.drop();
  await assert.rejects(pending, /disconnected/);
  assert.equal(conn.status, "reconnecting");
  timers.runNext();
  const second = FakeSocket.all[1];
  assert.equal(second.url, "ws://h/ws?session=s1&since=9");
  second.serverSends({ method: "argus/session", params: { id: "s1", seq: 12 } });
  second.serverSends({ argusSeq: 9, method: "item/agentMessage/delta", params: {} }); // duplicate
  second.serverSends({ argusSeq: 10, method: "item/agentMessage/delta", params: {} });
  const seen = events.filter(([t]) => t === "message").map(([, m]) => m.argusSeq);
  assert.deepEqual(seen, [6, 9, 10]);
  const answer = conn.request("thread/read", { threadId: "t" });
  second.serverSends({ id: second.sent.at(-1).id, result: { ok: 1 } });
  assert.deepEqual(await answer, { ok: 1 });
});

test("the pill turns offline after repeated failures, and an unknown session stops retrying", () => {
  FakeSocket.all = [];
  const timers = manualTimers();
  const conn = new Connection({ base: "ws://h", token: "", WebSocketImpl: FakeSocket, timers });
  conn.start("s1", 0);
  for (let i = 0; i < 4; i++) {
    FakeSocket.all.at(-1).drop();
    timers.runNext();
  }
  assert.equal(conn.status, "offline");
  assert.ok(conn.running);
  FakeSocket.all.at(-1).drop(1008, "Unknown session");
  assert.ok(!conn.running);
});

test("outbox: bounded, persistent, each entry taken once", () => {
  const storage = new Map();
  const store = { getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => storage.set(k, v) };
  const box = new Outbox(store);
  assert.ok(box.add("t1", "one"));
  assert.ok(box.add("t2", "two"));
  const reloaded = new Outbox(store);
  assert.equal(reloaded.size, 2);
  assert.equal(reloaded.take((t) => t === "t1").text, "two"); // t1 busy: t2 goes first
  assert.equal(reloaded.take(() => false).text, "one");
  assert.equal(reloaded.take(() => false), null);
  assert.equal(new Outbox(store).size, 0);
  for (let i = 0; i < OUTBOX_LIMIT; i++) assert.ok(box.add(null, `m${i}`) || i >= OUTBOX_LIMIT - 2);
  assert.ok(!box.add(null, "overflow"));
});

test("chat store: replayed deltas and thread/read history show the text once", () => {
  const s = new ChatStore();
  const base = { threadId: "t", turnId: "u1" };
  s.apply({ method: "turn/started", params: { threadId: "t", turn: { id: "u1" } } });
  s.apply({ method: "item/started", params: { ...base, item: { type: "userMessage", id: "m0", content: [{ type: "text", text: "hi" }] } } });
  s.apply({ method: "item/started", params: { ...base, item: { type: "agentMessage", id: "m1", text: "" } } });
  s.apply({ method: "item/agentMessage/delta", params: { ...base, itemId: "m1", delta: "Hel" } });
  // thread/read while the turn still runs: the streamed text is kept.
  s.applyHistory({ id: "t", turns: [{ id: "u1", status: "inProgress", items: [{ type: "userMessage", id: "m0", content: [{ type: "text", text: "hi" }] }] }] });
  s.apply({ method: "item/agentMessage/delta", params: { ...base, itemId: "m1", delta: "lo" } });
  assert.deepEqual(s.itemsOf("t").list.map((i) => i.text), ["hi", "Hello"]);
  s.apply({ method: "item/completed", params: { ...base, item: { type: "agentMessage", id: "m1", text: "Hello" } } });
  s.apply({ method: "item/agentMessage/delta", params: { ...base, itemId: "m1", delta: "lo" } }); // late duplicate
  s.apply({ method: "turn/completed", params: { threadId: "t", turn: { id: "u1", status: "completed", items: [] } } });
  s.applyHistory({ id: "t", turns: [{ id: "u1", status: "completed", items: [{ type: "userMessage", id: "m0", content: [{ type: "text", text: "hi" }] }, { type: "agentMessage", id: "m1", text: "Hello" }] }] });
  assert.deepEqual(s.itemsOf("t").list.map((i) => i.text), ["hi", "Hello"]);
  assert.ok(!s.turns.has("t"));
});

test("chat store: approvals open, close on resolve, and decisions become buttons", () => {
  const s = new ChatStore();
  s.apply({ id: 0, method: "item/commandExecution/requestApproval", params: { threadId: "t", turnId: "u", itemId: "c", command: "ls", availableDecisions: ["accept", "decline"] } });
  s.apply({ id: 0, method: "item/commandExecution/requestApproval", params: { threadId: "t", turnId: "u", itemId: "c", command: "ls" } }); // re-delivered
  assert.equal(s.approvals.size, 1);
  assert.deepEqual(decisionsOf(s.approvals.get("0").params).map((d) => d.label), ["Accept", "Decline"]);
  assert.deepEqual(decisionsOf({}).map((d) => d.label), ["Accept", "Accept for session", "Decline", "Cancel"]);
  assert.deepEqual(decisionsOf({ availableDecisions: [{ acceptWithExecpolicyAmendment: {} }] }).map((d) => d.label), ["Accept With Execpolicy Amendment"]);
  s.apply({ method: "serverRequest/resolved", params: { threadId: "t", requestId: 0 } });
  assert.equal(s.approvals.size, 0);
  s.apply({ id: "x", method: "item/fileChange/requestApproval", params: { threadId: "t", turnId: "u2" } });
  s.apply({ method: "turn/completed", params: { threadId: "t", turn: { id: "u2" } } });
  assert.equal(s.approvals.size, 0);
});

test("chat store: a replay gap asks for a resync", () => {
  const s = new ChatStore();
  s.apply({ method: "argus/replay/gap", params: { from: 3, to: 90 } });
  assert.ok(s.needsResync);
  assert.match(s.notices[0].text, /Missed messages 3–90/);
});
