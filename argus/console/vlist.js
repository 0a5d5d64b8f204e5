// A windowed list: only the items in (and near) the viewport are in the DOM, so a thread of
// thousands of items renders and scrolls like a short one. Heights are measured after each
// render and remembered per item id; unmeasured items count as an estimate. The list sticks
// to the bottom while the user is there (streaming text stays in view) and stays put when
// they scrolled up to read (until they send something: `jump` changes).

import { html, useLayoutEffect, useRef, useState } from "./vendor.js";

const ESTIMATE = 72; // px, an unmeasured item
const OVERSCAN = 600; // px rendered above and below the viewport

export function WindowedList({ items, renderItem, label, version, jump }) {
  const scroller = useRef(null);
  const heights = useRef(new Map());
  const stick = useRef(true);
  const lastJump = useRef(jump);
  if (jump !== lastJump.current) {
    lastJump.current = jump; // the user sent something: follow the conversation again
    stick.current = true;
  }
  const [view, setView] = useState({ top: 0, height: 800 });
  const [, setMeasured] = useState(0);

  // Offsets of every item (prefix sums): O(n) per render, fine for tens of thousands.
  const tops = new Array(items.length + 1);
  tops[0] = 0;
  for (let i = 0; i < items.length; i++) tops[i + 1] = tops[i] + (heights.current.get(items[i].id) || ESTIMATE);
  const total = tops[items.length];
  const from = Math.max(0, view.top - OVERSCAN);
  const to = view.top + view.height + OVERSCAN;
  let start = 0;
  let lo = 0;
  let hi = items.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (tops[mid + 1] < from) lo = mid + 1;
    else hi = mid;
  }
  start = lo;
  let end = start;
  while (end < items.length && tops[end] < to) end++;
  const shown = items.slice(start, end);

  const onScroll = () => {
    const el = scroller.current;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    setView({ top: el.scrollTop, height: el.clientHeight });
  };

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    let changed = false;
    for (const child of el.querySelectorAll("[data-item-id]")) {
      const id = child.getAttribute("data-item-id");
      const h = child.offsetHeight;
      if (h && heights.current.get(id) !== h) {
        heights.current.set(id, h);
        changed = true;
      }
    }
    if (stick.current) el.scrollTop = el.scrollHeight;
    if (el.clientHeight !== view.height || (stick.current && Math.abs(el.scrollTop - view.top) > 1)) {
      setView({ top: el.scrollTop, height: el.clientHeight });
    } else if (changed) setMeasured((n) => n + 1);
  });

  return html`<div class="vlist" ref=${scroller} onScroll=${onScroll} role="log" aria-label=${label}
      data-count=${items.length} data-version=${version}>
    <div class="vlist-body" style=${{ height: `${total}px` }}>
      <div class="vlist-window" style=${{ transform: `translateY(${tops[start]}px)` }}>
        ${shown.map((item) => html`<div key=${item.id} data-item-id=${item.id}>${renderItem(item)}</div>`)}
      </div>
    </div>
  </div>`;
}
