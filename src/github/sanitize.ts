/**
 * @deprecated Moved to `src/prompt/` (the one owner of untrusted-text handling); import from
 * `../prompt/index.js`. Kept as a re-export for callers not yet updated.
 */
export { commentsForPrompt, type PromptComment, sanitizeUntrustedText } from "../prompt/index.js";
