// The console's entry module: sign-in, the header (navigation, approvals badge, connection
// pill) and the page router (#/chat, #/sessions, #/nodes, #/automation, #/health).

import { html, render, useEffect, useState } from "./vendor.js";
import { Controller } from "./controller.js";
import { ChatPage } from "./chat.js";
import { AutomationPage, HealthPage, NodesPage, SessionsPage } from "./pages.js";

const ctl = new Controller();
window.argusStats = ctl.stats; // redraw and message counters, for the benchmark and tests

const PAGES = [
  ["chat", "Chat", ChatPage],
  ["sessions", "Sessions", SessionsPage],
  ["nodes", "Nodes", NodesPage],
  ["automation", "Automation", AutomationPage],
  ["health", "Health", HealthPage],
];

const PILL = { connected: "connected", connecting: "connecting…", reconnecting: "reconnecting…", offline: "offline" };

function route() {
  const name = (location.hash.match(/^#\/(\w+)/) || [])[1];
  return PAGES.find((p) => p[0] === name) || PAGES[0];
}

function SignIn() {
  const [token, setToken] = useState("");
  return html`<main class="signin">
    <form class="card form" onSubmit=${(e) => { e.preventDefault(); ctl.signIn(token); }}>
      <h1>Argus</h1>
      <p>This gateway needs its admin token. It is kept in this tab only (sessionStorage) and never put in a URL.</p>
      <label>Token <input type="password" autocomplete="current-password" value=${token} onInput=${(e) => setToken(e.currentTarget.value)} /></label>
      ${ctl.authError ? html`<p class="error" role="alert">${ctl.authError}</p>` : ""}
      <button type="submit" class="primary">Sign in</button>
    </form>
  </main>`;
}

function App() {
  const [, setVersion] = useState(0);
  const [page, setPage] = useState(route());
  useEffect(() => ctl.subscribe(() => setVersion((n) => n + 1)), []);
  useEffect(() => {
    const onHash = () => setPage(route());
    addEventListener("hashchange", onHash);
    return () => removeEventListener("hashchange", onHash);
  }, []);
  if (ctl.auth === "needed") return html`<${SignIn} />`;
  const [key, , Page] = page;
  const pending = ctl.store.approvals.size;
  return html`<div class="shell">
    <header class="top">
      <span class="brand">Argus</span>
      <nav class="nav" aria-label="Main">
        ${PAGES.map(([k, label]) => html`<a href=${`#/${k}`} aria-current=${k === key ? "page" : undefined}>${label}</a>`)}
      </nav>
      ${pending ? html`<a class="badge" href="#/chat" aria-label=${`${pending} pending approval${pending === 1 ? "" : "s"}`}>${pending}</a>` : ""}
      <span class=${`pill ${ctl.status}`} role="status" aria-live="polite">${PILL[ctl.status] || ctl.status}</span>
      ${ctl.token ? html`<button type="button" class="link" onClick=${() => ctl.signOut()}>Sign out</button>` : ""}
    </header>
    ${ctl.error ? html`<div class="error banner" role="alert">${ctl.error} <button type="button" class="link" onClick=${() => { ctl.error = ""; ctl.changed(); }}>Dismiss</button></div>` : ""}
    <main class="main"><${Page} ctl=${ctl} /></main>
  </div>`;
}

render(html`<${App} />`, document.getElementById("app"));
ctl.start();
