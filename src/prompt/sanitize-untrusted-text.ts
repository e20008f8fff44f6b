import { redactSecrets } from "../domain/redact.js";
import { escapeUntrusted } from "./escape-untrusted.js";
import { stripInvisible } from "./invisible-characters.js";

/** HTML comments, including one left open until the end of the text. */
const HTML_COMMENT = /<!--[\s\S]*?(?:-->|$)/g;

/**
 * Markdown link reference definitions that point nowhere — `[//]: # (hidden text)`,
 * `[comment]: # "x"`, `[x]: #`, `[//]: <> (x)`, `[a]: #anchor 'x'` — the usual way to write a
 * comment in Markdown: GitHub renders nothing for them, so a maintainer never sees their text.
 * Follows CommonMark's definition — a label, `:`, the destination (`#…`, `<>` or `<#…>`), and
 * an optional title in `"…"`, `'…'` or `(…)`, each part possibly on the next line (a title may
 * span lines, but not a blank one) — except that any indentation is accepted: CommonMark drops
 * the indentation of a paragraph's continuation lines, so a deeper-indented definition can
 * still be hidden (an indented code block that looks like one is removed too; a small loss).
 */
const HIDDEN_LINK_DEFINITION = new RegExp(
  [
    String.raw`^[ \t]*\[(?:[^\]\\\n]|\\.){1,999}\]:`,
    String.raw`[ \t]*(?:\n[ \t]*)?(?:#\S*|<#?[^<>\n]*>)`,
    String.raw`(?:[ \t]*(?:\n[ \t]*)?(?:"(?:[^"\\\n]|\\.|\n(?![ \t]*\n))*"|'(?:[^'\\\n]|\\.|\n(?![ \t]*\n))*'|\((?:[^()\\\n]|\\.|\n(?![ \t]*\n))*\)))?`,
    String.raw`[ \t]*$`,
  ].join(""),
  "gm",
);

/**
 * Makes untrusted prose (issue titles and bodies, comments, review text, a maintainer's
 * notes) safe to place inside a prompt's user turn. In this order:
 *
 * 1. normalises Unicode to NFC;
 * 2. removes invisible characters — every `\p{Default_Ignorable_Code_Point}` and `\p{Cf}` code
 *    point (zero-width and bidirectional characters, Unicode tag characters, variation
 *    selectors except U+FE0E/U+FE0F right after an emoji) — and control characters other than
 *    tab and line breaks (see `invisible-characters.ts`); first, because one inside `<!--` would
 *    otherwise hide the comment from the next step;
 * 3. removes hidden HTML comments (`<!-- … -->`, also when left open);
 * 4. removes Markdown link reference definitions that point at `#` or `<>` (`[//]: # (…)`),
 *    which GitHub does not render either;
 * 5. redacts secrets (`redactSecrets`);
 * 6. escapes look-alikes of our prompt tags (`escapeUntrusted`), so the text cannot close the
 *    element it is placed in;
 * 7. trims surrounding whitespace.
 *
 * It is safe to apply again to text a caller already sanitised (the prompt builders do, so
 * that no path into a prompt depends on the caller having done it).
 */
export function sanitizeUntrustedText(text: string): string {
  let out = text.normalize("NFC");
  out = stripInvisible(out);
  out = out.replace(HTML_COMMENT, "");
  out = out.replace(HIDDEN_LINK_DEFINITION, "");
  out = redactSecrets(out);
  out = escapeUntrusted(out);
  return out.trim();
}

/** A comment as it may enter a prompt. */
export interface PromptComment {
  author: string;
  body: string;
  createdAt: string;
  updatedAt: string;
}

/**
 * Drops comments created or edited after `trigger` (an ISO time): text changed after a
 * maintainer asked for work was not seen by that maintainer. Sanitises the bodies of the rest
 * with {@link sanitizeUntrustedText}; the input is not modified.
 */
export function commentsForPrompt(comments: readonly PromptComment[], trigger: string): PromptComment[] {
  const cutoff = Date.parse(trigger);
  return comments
    .filter((c) => Number.isNaN(cutoff) || (Date.parse(c.createdAt) <= cutoff && Date.parse(c.updatedAt) <= cutoff))
    .map((c) => ({ ...c, body: sanitizeUntrustedText(c.body) }));
}
