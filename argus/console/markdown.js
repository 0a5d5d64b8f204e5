// Markdown to safe HTML: marked parses, DOMPurify sanitises (the runtime's text is untrusted).
// Links open in a new tab without an opener; the page's CSP blocks anything that slips by.

import { DOMPurify, marked } from "./vendor.js";

marked.setOptions({ gfm: true, breaks: true });

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  }
});

const cache = new Map(); // text -> html, for finished items (bounded)
const CACHE_LIMIT = 500;

/** Sanitised HTML for Markdown `text` (finished texts are cached). */
export function renderMarkdown(text, final) {
  if (final && cache.has(text)) return cache.get(text);
  const html = DOMPurify.sanitize(marked.parse(text || ""), { USE_PROFILES: { html: true } });
  if (final) {
    cache.set(text, html);
    if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value);
  }
  return html;
}
