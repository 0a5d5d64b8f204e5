// Everything the console takes from npm, in one module: `npm run build:vendor` bundles it
// into argus/console/vendor.js (committed), which the app modules import as ./vendor.js.
export { h, render, Fragment } from "preact";
export { useState, useEffect, useRef, useMemo, useCallback, useLayoutEffect, useReducer } from "preact/hooks";
import { h } from "preact";
import htm from "htm";
export const html = htm.bind(h);
export { marked } from "marked";
export { default as DOMPurify } from "dompurify";
