// The Chat page: the session's threads (paged), the open thread's items in a windowed list,
// approval cards, and the composer whose Send becomes Stop while a turn runs.

import { html, useMemo, useRef, useState } from "./vendor.js";
import { decisionsOf } from "./chatstate.js";
import { renderMarkdown } from "./markdown.js";
import { WindowedList } from "./vlist.js";

// Past this size a message still streaming is shown as plain text (re-parsing a growing
// document every frame would cost O(n²)); it becomes Markdown once finished.
const LIVE_MARKDOWN_LIMIT = 64 * 1024;

function Markdown({ text, final }) {
  const plain = !final && text.length > LIVE_MARKDOWN_LIMIT;
  const markup = useMemo(() => (plain ? "" : renderMarkdown(text, final)), [text, final, plain]);
  if (plain) return html`<div class="md plain">${text}</div>`;
  return html`<div class="md" dangerouslySetInnerHTML=${{ __html: markup }}></div>`;
}

const FOLD_TITLES = { reasoning: "Reasoning", command: "Command", fileChange: "File change", tool: "Tool call", other: "Item" };

function statusText(item) {
  if (!item.done) return "running";
  if (item.status === "declined") return "declined";
  if (item.status === "failed" || (item.exitCode != null && item.exitCode !== 0)) return "failed";
  return "done";
}

export function Item({ item }) {
  if (item.kind === "user") {
    return html`<article class="msg user" aria-label="You"><div class="who">You</div><div class="plain">${item.text}</div></article>`;
  }
  if (item.kind === "agent") {
    return html`<article class=${`msg agent${item.done ? "" : " streaming"}`} aria-label="Agent">
      <div class="who">Agent${item.partial ? " (joined mid-message)" : ""}</div>
      <${Markdown} text=${item.text} final=${item.done} />
    </article>`;
  }
  const title = FOLD_TITLES[item.kind] || "Item";
  return html`<details class=${`fold ${item.kind}`}>
    <summary><span class="fold-title">${title}</span>${item.title ? html` <code>${item.title}</code>` : ""}
      <span class=${`badge-status ${statusText(item)}`}>${statusText(item)}</span></summary>
    ${item.kind === "reasoning" ? html`<${Markdown} text=${item.text} final=${item.done} />` : html`<pre>${item.text}</pre>`}
  </details>`;
}

export function ApprovalCard({ ctl, approval }) {
  const p = approval.params || {};
  const isFile = approval.method.includes("fileChange");
  const list = p.threadId ? ctl.store.itemsOf(p.threadId, false) : null;
  const item = list && p.itemId != null ? list.get(p.itemId) : null;
  const thread = ctl.store.threads.find((t) => t.id === p.threadId);
  const detail = isFile ? (item && item.text) || p.reason || "(no diff yet)" : Array.isArray(p.command) ? p.command.join(" ") : p.command || (item && item.title) || "";
  return html`<section class="approval" role="group" aria-label=${isFile ? "Approve file change" : "Approve command"}>
    <div class="approval-head">${isFile ? "Apply these changes?" : "Run this command?"}
      <span class="muted"> · thread ${(thread && thread.preview) || (p.threadId || "").slice(0, 8)}</span></div>
    <pre class="approval-detail">${detail}</pre>
    ${p.cwd ? html`<div class="muted">in ${p.cwd}</div>` : ""}
    ${p.reason && !isFile ? html`<div class="muted">${p.reason}</div>` : ""}
    <div class="approval-actions">
      ${decisionsOf(p).map(
        (d) => html`<button type="button" class=${d.label.startsWith("Accept") ? "primary" : ""} onClick=${() => ctl.answer(approval, d.decision)}>${d.label}</button>`,
      )}
    </div>
  </section>`;
}

function ThreadList({ ctl }) {
  const threads = ctl.store.threads;
  return html`<nav class="threads" aria-label="Threads">
    <button type="button" onClick=${() => ctl.newThread().catch((e) => { ctl.error = e.message; ctl.changed(); })}
      disabled=${!ctl.conn || !ctl.conn.connected}>New thread</button>
    <ul>
      ${threads.map(
        (t) => html`<li key=${t.id}><button type="button" class=${t.id === ctl.currentThread ? "thread current" : "thread"}
          aria-current=${t.id === ctl.currentThread ? "true" : undefined} onClick=${() => ctl.openThread(t.id)}>
          ${t.preview || "(no preview)"}${ctl.store.turns.has(t.id) ? html` <span class="dot" title="running">●</span>` : ""}</button></li>`,
      )}
    </ul>
    ${ctl.store.nextCursor ? html`<button type="button" onClick=${() => ctl.loadThreads(true)}>Load more threads</button>` : ""}
  </nav>`;
}

function Composer({ ctl }) {
  const [text, setText] = useState("");
  const ref = useRef(null);
  const turn = ctl.currentThread ? ctl.store.turns.get(ctl.currentThread) : null;
  const submit = async () => {
    const value = text;
    if (!value.trim()) return;
    setText("");
    const ok = await ctl.send(value);
    if (!ok) setText(value);
  };
  const onKey = (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      if (!turn) submit();
    }
  };
  const queued = ctl.outbox.entries;
  return html`<form class="composer" onSubmit=${(e) => { e.preventDefault(); if (!turn) submit(); }}>
    ${queued.length ? html`<div class="outbox" role="note">Waiting to send when reconnected:
      <ul>${queued.map((q, i) => html`<li key=${i}>${q.text}</li>`)}</ul></div>` : ""}
    <textarea ref=${ref} aria-label="Message" placeholder="Message the agent (Enter sends, Shift+Enter: new line)" rows="2"
      value=${text} onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${onKey}></textarea>
    ${turn
      ? turn.stopping
        ? html`<button type="button" disabled>stopping…</button>`
        : html`<button type="button" class="stop" onClick=${() => ctl.stop()}>Stop</button>`
      : html`<button type="submit" class="primary">Send</button>`}
  </form>`;
}

export function ChatPage({ ctl }) {
  const threadId = ctl.currentThread;
  const list = threadId ? ctl.store.itemsOf(threadId, false) : null;
  const items = list ? list.list : [];
  const approvals = [...ctl.store.approvals.values()];
  const notices = ctl.store.notices.slice(-3);
  return html`<div class="chat">
    <${ThreadList} ctl=${ctl} />
    <section class="conversation" aria-label="Conversation">
      ${notices.map((n) => html`<div class="notice" key=${n.at}>${n.text}</div>`)}
      <${WindowedList} items=${items} label="Messages" version=${list ? list.rev : 0} jump=${ctl.sent}
        renderItem=${(item) => html`<${Item} item=${item} />`} />
      ${approvals.length ? html`<div class="approvals" aria-label="Pending approvals">
        ${approvals.map((a) => html`<${ApprovalCard} key=${JSON.stringify(a.id)} ctl=${ctl} approval=${a} />`)}</div>` : ""}
      <${Composer} ctl=${ctl} />
    </section>
  </div>`;
}
