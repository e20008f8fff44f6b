/**
 * Untrusted text on its way into a prompt: the one list of tags the prompts use, the escaping
 * that keeps text from imitating them, and the sanitising of prose, code and command output.
 * Every prompt builder in `src/agents/` goes through this module for every piece of text it
 * did not write itself.
 */
export { escapeAttribute, escapeUntrusted, PROMPT_TAGS } from "./escape-untrusted.js";
export { escapeCommandOutput, type EscapeCodeOptions, escapePatchForPrompt, escapeUntrustedCode, escapeUntrustedName } from "./escape-untrusted-code.js";
export { showInvisible, stripInvisible } from "./invisible-characters.js";
export { commentsForPrompt, type PromptComment, sanitizeUntrustedText } from "./sanitize-untrusted-text.js";
export { promptSafe, type PromptSafeText } from "./prompt-safe-text.js";
