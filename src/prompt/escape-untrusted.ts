/**
 * The tags our prompts wrap text in, and the escaping that keeps untrusted text from
 * imitating them. This is the only list: every prompt builder (`src/agents/*.ts`) and every
 * system prompt (`prompts/*.md`) uses only tags named here, and
 * `test/prompt/tag-coverage.test.ts` fails when one is added elsewhere without being added here.
 */

import { redactSecrets } from "../domain/redact.js";
import { showInvisible } from "./invisible-characters.js";

/**
 * Every tag name the prompts use, as elements (`<issue>…</issue>`) or as names the system
 * prompts refer to. `notes`, `instructions` and `untrusted` are not emitted today but are
 * names a reader would take for ours (`/code <instructions>`), so they are escaped too.
 */
export const PROMPT_TAGS = [
  "body",
  "comment",
  "comments",
  "diff",
  "diff_hunk",
  "feedback",
  "file",
  "file_tree",
  "instructions",
  "issue",
  "learning",
  "maintainer_notes",
  "notes",
  "other_files",
  "patch",
  "plan",
  "pull_request",
  "question",
  "repository",
  "repository_guidance",
  "repository_map",
  "repository_memory",
  "review_thread",
  "test_output",
  "title",
  "untrusted",
] as const;

const TAG_SET: ReadonlySet<string> = new Set(PROMPT_TAGS);

/**
 * A `<` (or a full-width `＜` / small `﹤` look-alike), optional whitespace and invisible
 * characters, an optional `/` (or `／`), then a name whose letters may be split by invisible
 * characters (`\p{Default_Ignorable_Code_Point}`, the Unicode property of characters that
 * render as nothing: zero-width spaces and joiners, bidirectional controls, variation
 * selectors, tag characters). The name is checked against {@link PROMPT_TAGS} after removing
 * those. The two whitespace runs are separated by the `/` group so that a long run of spaces
 * after a `<` is scanned once, not backtracked quadratically.
 */
const TAG_LOOKALIKE =
  /[<\uFF1C\uFE64](?<gap>[\s\p{Default_Ignorable_Code_Point}]*(?:[/\uFF0F][\s\p{Default_Ignorable_Code_Point}]*)?)(?<name>[\p{L}\p{N}_\p{Default_Ignorable_Code_Point}]+)/gu;
const IGNORABLE = /\p{Default_Ignorable_Code_Point}/gu;

/**
 * Neutralises every opening or closing look-alike of a prompt tag in `text`: its `<` becomes
 * `&lt;`, so `</issue>` reads `&lt;/issue>` and cannot close the element the text is placed in,
 * nor open one of ours. Matches regardless of case (`</ISSUE>`), with whitespace (`< /issue >`,
 * `</issue\n>`), with attributes (`<file path="x">`), with invisible characters inside
 * (`<\u200B/iss\u200Bue>`) and in full-width forms (`＜／ｉｓｓｕｅ＞`, compared after NFKC).
 * Names that merely start like a tag (`<issues>`, `<filet>`) and all other markup
 * (`<details>`, `Promise<void>`) are left alone. Nothing else changes, so text escaped twice
 * reads the same as text escaped once.
 *
 * Use it for text that must otherwise stay verbatim; prose goes through
 * `sanitizeUntrustedText`, code and command output through `escapeUntrustedCode`, which both
 * call it.
 */
export function escapeUntrusted(text: string): string {
  return text.replace(TAG_LOOKALIKE, (match: string, gap: string, name: string) =>
    TAG_SET.has(name.replace(IGNORABLE, "").normalize("NFKC").toLowerCase()) ? `&lt;${gap}${name}` : match,
  );
}

/**
 * Escapes a value for an attribute of a prompt element (`<file path="…">`): `&`, `"`, `<` and
 * `>` become entities, and control and invisible characters (a newline in a file name, a
 * right-to-left override) become visible as `[U+000A]`, so the value stays on its line and
 * reads as what it is; secrets are redacted (a token in a file name). Numbers are stringified.
 */
export function escapeAttribute(value: string | number): string {
  return showInvisible(redactSecrets(String(value)), { singleLine: true }).replace(
    /[&"<>]/g,
    (c) => ({ "&": "&amp;", '"': "&quot;", "<": "&lt;", ">": "&gt;" })[c] ?? c,
  );
}
