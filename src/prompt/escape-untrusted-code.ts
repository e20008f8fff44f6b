import { redactSecrets } from "../domain/redact.js";
import { escapeUntrusted } from "./escape-untrusted.js";
import { showInvisible } from "./invisible-characters.js";

/** Options of {@link escapeUntrustedCode}. */
export interface EscapeCodeOptions {
  /** Label line breaks and tabs too (`[U+000A]`), so the text stays on one line: file names, symbols. */
  singleLine?: boolean;
  /** A prefix each line keeps when a multi-line secret is redacted line by line (`/^[ +-]/` for a diff). */
  linePrefix?: RegExp;
}

/**
 * Makes untrusted code-like text — a repository file, a diff, a file name, a symbol, a commit
 * subject, search results, command output — safe to place in a prompt while keeping it a
 * faithful copy. Unlike `sanitizeUntrustedText` (for prose), it never removes content:
 *
 * - secrets are redacted (`redactSecrets`) with the line structure kept — a private key
 *   becomes one `[REDACTED]` per line — so line numbers the model reads stay true;
 * - look-alikes of our prompt tags become `&lt;tag` (`escapeUntrusted`), so the text cannot
 *   close the element it is placed in;
 * - invisible, bidirectional and control characters are shown as `[U+202E]` rather than
 *   removed: they can change what code means ("Trojan Source"), so the model must see them.
 *
 * HTML comments and Markdown are content here and stay; nothing is trimmed and Unicode is not
 * normalised.
 */
export function escapeUntrustedCode(text: string, options: EscapeCodeOptions = {}): string {
  const redacted = redactSecrets(text, { keepLines: true, ...(options.linePrefix ? { linePrefix: options.linePrefix } : {}) });
  return showInvisible(escapeUntrusted(redacted), { singleLine: options.singleLine ?? false });
}

/**
 * {@link escapeUntrustedCode} for one name that must stay on its line: a file path in a list,
 * a symbol of the repository map, a commit subject.
 */
export function escapeUntrustedName(name: string): string {
  return escapeUntrustedCode(name, { singleLine: true });
}

/**
 * {@link escapeUntrustedCode} for a unified-diff patch (`<patch>`): a redacted private key keeps
 * each line's diff marker (` `, `+`, `-`), so hunk line numbers stay true.
 */
export function escapePatchForPrompt(patch: string): string {
  return escapeUntrustedCode(patch, { linePrefix: /^[ +-]/ });
}

/** ANSI escape sequences: CSI (colours, cursor moves), OSC (titles, hyperlinks) and two-character escapes. */
// eslint-disable-next-line no-control-regex -- matching ESC (U+001B) and BEL (U+0007) is the point: this strips terminal escape sequences
const ANSI = /\u001B\[[0-?]*[ -/]*[@-~]|\u001B\][^\u0007\u001B]*(?:\u0007|\u001B\\)|\u001B[@-Z\\-_]/g;

/**
 * {@link escapeUntrustedCode} for the output of a command (tests, lint, build): ANSI escape
 * sequences are removed first and carriage returns become line breaks (a progress bar's
 * overwritten lines stay readable), then secrets are redacted, tags escaped and the remaining
 * control characters shown.
 */
export function escapeCommandOutput(output: string): string {
  return escapeUntrustedCode(output.replace(ANSI, "").replace(/\r\n?/g, "\n"));
}
