// The supervision pages: Sessions, Nodes, Automation and Health. Each reads the gateway's
// HTTP API (admin token in the Authorization header) and refreshes itself while open.

import { html, useEffect, useState } from "./vendor.js";

const REFRESH_MS = 5000;

function ago(ms) {
  if (!ms) return "—";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

/** Poll `load` every REFRESH_MS while the page is shown; returns [data, error, reload]. */
function usePoll(load, deps = []) {
  const [state, setState] = useState({ data: null, error: "" });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load()
      .then((data) => live && setState({ data, error: "" }))
      .catch((err) => live && setState((s) => ({ data: s.data, error: err.message })));
    const timer = setTimeout(() => live && setTick((n) => n + 1), REFRESH_MS);
    return () => {
      live = false;
      clearTimeout(timer);
    };
  }, [tick, ...deps]);
  return [state.data, state.error, () => setTick((n) => n + 1)];
}

function ErrorLine({ text }) {
  return text ? html`<p class="error" role="alert">${text}</p>` : "";
}

// -- Sessions ---------------------------------------------------------------------------------

export function SessionsPage({ ctl }) {
  const [sessions, error, reload] = usePoll(() => ctl.listSessions());
  const [confirming, setConfirming] = useState(null);
  const [problem, setProblem] = useState("");
  const starts = (ctl.info && ctl.info.createStarts) || "a new session";
  const remove = async (id) => {
    setConfirming(null);
    try {
      await ctl.deleteSession(id);
      setProblem("");
    } catch (err) {
      setProblem(err.message);
    }
    reload();
  };
  return html`<section class="page" aria-labelledby="sessions-h">
    <h1 id="sessions-h">Sessions</h1>
    <div class="card">
      <p>Creating a session starts ${starts}.</p>
      <button type="button" class="primary" onClick=${() => { ctl.createSession(); location.hash = "#/chat"; }}>Create session</button>
    </div>
    <${ErrorLine} text=${error || problem} />
    <table class="table">
      <thead><tr><th>Session</th><th>State</th><th>Clients</th><th>Created</th><th>Last active</th><th></th></tr></thead>
      <tbody>
        ${(sessions || []).map(
          (s) => html`<tr key=${s.sessionId} aria-label=${`Session ${s.sessionId}`}>
            <td><code>${s.sessionId}</code>${s.sessionId === ctl.sessionId ? html` <span class="tag">current</span>` : ""}
              <div class="muted">${s.mode}${s.pid ? ` · pid ${s.pid}` : ""}${s.name ? ` · ${s.name}` : ""}</div></td>
            <td>${s.state}</td><td>${s.clients}</td><td>${when(s.createdAtMs)}</td><td>${ago(s.lastActiveAtMs)}</td>
            <td class="actions">
              ${s.sessionId !== ctl.sessionId ? html`<button type="button" onClick=${() => { ctl.switchSession(s.sessionId); location.hash = "#/chat"; }}>Open</button>` : ""}
              ${confirming === s.sessionId
                ? html`<span role="alertdialog" aria-label="Confirm delete">Delete ${s.sessionId}? Its runtime stops and its clients are disconnected.
                    <button type="button" class="danger" onClick=${() => remove(s.sessionId)}>Delete for good</button>
                    <button type="button" onClick=${() => setConfirming(null)}>Cancel</button></span>`
                : html`<button type="button" onClick=${() => setConfirming(s.sessionId)}>Delete</button>`}
            </td>
          </tr>`,
        )}
      </tbody>
    </table>
    ${sessions && !sessions.length ? html`<p class="muted">No sessions.</p>` : ""}
  </section>`;
}

// -- Nodes ------------------------------------------------------------------------------------

const MAX_TIMEOUT_MS = 600000;

/** The invoke form's checks: params must be JSON, the timeout a whole number of ms. */
export function validateInvoke(paramsText, timeoutText) {
  let params = null;
  if (paramsText.trim()) {
    try {
      params = JSON.parse(paramsText);
    } catch {
      return { error: "Params must be valid JSON" };
    }
  }
  const timeout = Number(timeoutText);
  if (!/^\d+$/.test(timeoutText.trim()) || timeout < 1 || timeout > MAX_TIMEOUT_MS) {
    return { error: `Timeout must be a whole number of milliseconds from 1 to ${MAX_TIMEOUT_MS}` };
  }
  return { params, timeout };
}

export function NodesPage({ ctl }) {
  const [nodes, error] = usePoll(async () => (await ctl.api.get("/nodes")).nodes || []);
  const [form, setForm] = useState({ node: "", command: "system.run", params: '{"argv":["echo","hello from the console"]}', timeout: "30000" });
  const [result, setResult] = useState(null);
  const [problem, setProblem] = useState("");
  const set = (key) => (e) => setForm({ ...form, [key]: e.currentTarget.value });
  const chosen = (nodes || []).find((n) => n.nodeId === form.node) || (nodes || [])[0];
  const invoke = async (e) => {
    e.preventDefault();
    const checked = validateInvoke(form.params, form.timeout);
    if (checked.error) {
      setProblem(checked.error);
      return;
    }
    if (!chosen) {
      setProblem("No node is connected");
      return;
    }
    setProblem("");
    setResult({ pending: true });
    try {
      const body = { node: chosen.nodeId, command: form.command.trim(), params: checked.params, timeoutMs: checked.timeout };
      setResult({ data: await ctl.api.post("/nodes/invoke", body) });
    } catch (err) {
      setResult({ data: { ok: false, error: err.message } });
    }
  };
  return html`<section class="page" aria-labelledby="nodes-h">
    <h1 id="nodes-h">Nodes</h1>
    <${ErrorLine} text=${error} />
    ${nodes && !nodes.length ? html`<p class="muted">No node is connected. Start one with <code>argus node-host --url …</code>.</p>` : ""}
    <ul class="cards">
      ${(nodes || []).map(
        (n) => html`<li class="card" key=${n.nodeId} aria-label=${`Node ${n.displayName || n.nodeId}`}>
          <strong>${n.displayName || n.nodeId}</strong> <span class="muted">${n.nodeId} · ${n.platform || "?"} · v${n.version || "?"}</span>
          <div>Last seen ${ago(n.lastSeenMs)} · connected ${when(n.connectedAtMs)}</div>
          <div class="commands">${(n.commands || []).map((c) => html`<code key=${c}>${c}</code> `)}</div>
        </li>`,
      )}
    </ul>
    <form class="card form" onSubmit=${invoke} aria-label="Invoke a command">
      <h2>Invoke</h2>
      <label>Node <select value=${chosen ? chosen.nodeId : ""} onChange=${set("node")}>
        ${(nodes || []).map((n) => html`<option value=${n.nodeId}>${n.displayName || n.nodeId}</option>`)}</select></label>
      <label>Command <input value=${form.command} onInput=${set("command")} list="node-commands" /></label>
      <datalist id="node-commands">${((chosen && chosen.commands) || []).map((c) => html`<option value=${c} />`)}</datalist>
      <label>Timeout (ms) <input value=${form.timeout} onInput=${set("timeout")} inputmode="numeric" /></label>
      <label>Params (JSON) <textarea rows="3" value=${form.params} onInput=${set("params")}></textarea></label>
      <${ErrorLine} text=${problem} />
      <button type="submit" class="primary">Invoke</button>
      ${result ? html`<pre class="result" aria-label="Invoke result">${result.pending ? "…" : JSON.stringify(result.data, null, 2)}</pre>` : ""}
    </form>
  </section>`;
}

// -- Automation -------------------------------------------------------------------------------

export function AutomationPage({ ctl }) {
  const sessionId = ctl.sessionId;
  const [jobs, error, reload] = usePoll(
    async () => (sessionId ? (await ctl.api.get(`/automation/cron/jobs?sessionId=${encodeURIComponent(sessionId)}`)).jobs || [] : []),
    [sessionId],
  );
  const [job, setJob] = useState({ expr: "0 9 * * *", tz: "UTC", text: "", mode: "systemEvent" });
  const [event, setEvent] = useState("");
  const [runs, setRuns] = useState(null);
  const [message, setMessage] = useState("");
  const [problem, setProblem] = useState("");
  const act = async (fn, done) => {
    try {
      const out = await fn();
      setProblem("");
      if (done) setMessage(done(out));
    } catch (err) {
      setProblem(err.message);
    }
    reload();
  };
  const save = (spec) => ctl.api.post("/automation/cron/jobs", { ...spec, sessionId });
  const specOf = (j) => {
    const spec = { jobId: j.jobId, text: j.text, mode: j.mode, enabled: j.enabled };
    for (const key of ["expr", "tz", "at", "threadId", "target"]) if (j[key] != null) spec[key] = j[key];
    return spec;
  };
  const set = (key) => (e) => setJob({ ...job, [key]: e.currentTarget.value });
  return html`<section class="page" aria-labelledby="automation-h">
    <h1 id="automation-h">Automation</h1>
    <p class="muted">Session <code>${sessionId || "—"}</code></p>
    <${ErrorLine} text=${error || problem} />
    ${message ? html`<p class="ok" aria-live="polite">${message}</p>` : ""}
    <h2>Cron jobs</h2>
    <table class="table">
      <thead><tr><th>Job</th><th>Schedule</th><th>Text</th><th>Next run</th><th>Last run</th><th></th></tr></thead>
      <tbody>
        ${(jobs || []).map(
          (j) => html`<tr key=${j.jobId} aria-label=${`Job ${j.jobId}`}>
            <td><code>${j.jobId}</code><div class="muted">${j.mode}</div></td>
            <td><code>${j.expr || j.at}</code> ${j.tz || ""}</td><td>${j.text}</td>
            <td>${j.enabled ? when(j.nextRunAtMs) : "disabled"}</td><td>${when(j.lastRunAtMs)}</td>
            <td class="actions">
              <button type="button" onClick=${() => act(() => save({ ...specOf(j), enabled: !j.enabled }))}>${j.enabled ? "Disable" : "Enable"}</button>
              <button type="button" onClick=${() => act(async () => setRuns({ jobId: j.jobId, runs: (await ctl.api.get(`/automation/cron/jobs/${encodeURIComponent(j.jobId)}/runs`)).runs }))}>Runs</button>
              <button type="button" class="danger" onClick=${() => confirm(`Delete job ${j.jobId}?`) && act(() => ctl.api.delete(`/automation/cron/jobs/${encodeURIComponent(j.jobId)}`), () => `Deleted job ${j.jobId}`)}>Delete</button>
            </td></tr>`,
        )}
      </tbody>
    </table>
    ${jobs && !jobs.length ? html`<p class="muted">No cron jobs in this session.</p>` : ""}
    ${runs ? html`<div class="card" aria-label="Run history"><h3>Runs of ${runs.jobId}</h3>
      ${runs.runs.length ? html`<ul>${runs.runs.map((r, i) => html`<li key=${i}>${when(r.startedAtMs || r.scheduledAtMs)} · ${r.status || ""} ${r.error || ""}${r.missed ? ` · missed ${r.missed}` : ""}</li>`)}</ul>` : html`<p class="muted">No runs yet.</p>`}</div>` : ""}
    <form class="card form" aria-label="New cron job" onSubmit=${(e) => { e.preventDefault(); act(() => save(job), (out) => `Created job ${out.job.jobId}`); }}>
      <h2>New cron job</h2>
      <label>Schedule (cron) <input value=${job.expr} onInput=${set("expr")} /></label>
      <label>Time zone <input value=${job.tz} onInput=${set("tz")} /></label>
      <label>Text <input value=${job.text} onInput=${set("text")} /></label>
      <label>Mode <select value=${job.mode} onChange=${set("mode")}><option value="systemEvent">system event on the main thread</option><option value="turn">a turn on a new thread</option></select></label>
      <button type="submit" class="primary">Create job</button>
    </form>
    <div class="card">
      <h2>Heartbeat</h2>
      <button type="button" onClick=${() => act(() => ctl.api.post("/automation/heartbeat/now", { sessionId }), () => "Heartbeat requested")}>Heartbeat now</button>
    </div>
    <form class="card form" aria-label="System event" onSubmit=${(e) => { e.preventDefault(); act(() => ctl.api.post("/automation/systemEvent/enqueue", { sessionId, text: event }), (out) => `Queued event ${out.event ? out.event.eventId : ""}`); }}>
      <h2>System event</h2>
      <label>Event text <input value=${event} onInput=${(e) => setEvent(e.currentTarget.value)} /></label>
      <button type="submit" class="primary">Queue event</button>
    </form>
  </section>`;
}

// -- Health -----------------------------------------------------------------------------------

export function HealthPage({ ctl }) {
  const [health, error] = usePoll(async () => {
    const response = await fetch("/healthz", { cache: "no-store" });
    return { status: response.status, body: await response.text() };
  });
  const [paused, setPaused] = useState(false);
  const [, setTick] = useState(0);
  useEffect(() => {
    if (paused) return undefined;
    const timer = setInterval(() => setTick((n) => n + 1), 1000);
    return () => clearInterval(timer);
  }, [paused]);
  const frames = ctl.conn ? ctl.conn.frames.entries.slice(-200).reverse() : [];
  return html`<section class="page" aria-labelledby="health-h">
    <h1 id="health-h">Health</h1>
    <${ErrorLine} text=${error} />
    <dl class="facts">
      <dt>/healthz</dt><dd>${health ? `${health.status} ${health.body}` : "…"}</dd>
      <dt>Gateway version</dt><dd>${ctl.info ? ctl.info.version : "—"}</dd>
      <dt>Runtime mode</dt><dd>${ctl.info ? ctl.info.mode : "—"}</dd>
      <dt>Session</dt><dd><code>${ctl.sessionId || "—"}</code></dd>
      <dt>Connection</dt><dd>${ctl.status}</dd>
      <dt>Last sequence number</dt><dd>${ctl.conn ? ctl.conn.seq.last : 0}</dd>
      <dt>Frames seen</dt><dd>${ctl.conn ? ctl.conn.frames.total : 0}</dd>
    </dl>
    <div class="row">
      ${ctl.status === "offline" && ctl.conn && !ctl.conn.running
        ? html`<button type="button" onClick=${() => ctl.reconnect()}>Connect</button>`
        : html`<button type="button" onClick=${() => ctl.disconnect()}>Disconnect</button>`}
      <button type="button" onClick=${() => setPaused(!paused)}>${paused ? "Resume log" : "Pause log"}</button>
      <button type="button" onClick=${() => { if (ctl.conn) ctl.conn.frames.clear(); setTick((n) => n + 1); }}>Clear log</button>
    </div>
    <h2>Frames (newest first)</h2>
    <ol class="frames" aria-label="Frame log">
      ${frames.map((f) => html`<li key=${f.n} class=${f.dir}><span class="dir">${f.dir === "in" ? "←" : "→"}</span> <code>${f.text}</code></li>`)}
    </ol>
  </section>`;
}
