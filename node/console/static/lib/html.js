// The one front-end library: Preact with hooks, and htm's tagged templates (no build step).
// htm escapes every interpolated value, so text from the API is always rendered as text.
export { html, render, useState, useEffect, useRef, useMemo, useCallback } from "../vendor/htm-preact-standalone.module.js";
