/**
 * @-mentions of the app in plain words: `@mission-control why does this loop never end?`.
 *
 * A comment that is not a slash-command (commands win: `parseCommand` first) and mentions the
 * app in its prose — not inside a block quote, a fenced or indented code block, an inline code
 * span or an HTML comment — is a request in plain words. What it starts depends on where it was
 * written (`pipeline/intake.ts`): a (re)plan on an issue, a revision on the app's pull request,
 * an answer by the Reviewer on any other pull request. No I/O.
 */

import { BLOCKQUOTE, cut, FENCE, HTML_COMMENT, indentation, normaliseSlug, parseCommand } from "./slash-commands.js";

/** What {@link parseMention} found. */
export interface ParsedMention {
  /**
   * The comment without the mention(s) of the app and without HTML comments, trimmed and cut
   * to `MAX_ARGS_LENGTH` (4,000) characters. Untrusted text: it is sanitised before it reaches
   * a prompt. Quotes and code written around the mention are kept: they are part of the request.
   */
  text: string;
}

/**
 * Characters that may not come right before a mention: a login character or `.`, `+`, `@`
 * (an e-mail address such as `ops@mission-control.example`), `/` (a path or URL) or `` ` ``.
 */
const BEFORE = String.raw`(?<![\p{L}\p{N}_.+\-@/\x60])`;
/** Characters that may not come right after it: a login character (`@mission-control-x` is someone else) or `/` (`@org/team`). */
const AFTER = String.raw`(?![\p{L}\p{N}_\-/])`;

/** A code span: a run of backticks, text (no blank line), the same run again. */
const CODE_SPAN = /(?<!`)(`+)(?!`)((?:(?!\n[ \t]*\n)[\s\S])*?[^`])\1(?!`)/g;

/**
 * Finds a mention of the app in a comment that is not a command.
 *
 * The mention is `@<slug>` or `@<slug>[bot]`, case-insensitive, as a whole login (`@<slug>x`,
 * `@<slug>-x`, `@<slug>/team` and `name@<slug>` are not mentions), in the comment's prose:
 * mentions inside block quotes (with their lazy continuation lines), fenced or indented code
 * blocks, inline code and HTML comments do not count — quoting or documenting the app does not
 * address it. A comment whose text, the mention removed, has no letter or digit
 * (`@mission-control!`) asks nothing and is not a mention either.
 *
 * @param body the comment's Markdown, as in the webhook payload (CRLF or LF).
 * @param appSlug the app's slug (`mission-control`); a leading `@` or trailing `[bot]` is ignored.
 * @returns `null` when the comment is a command (`parseCommand` did not return `null`), does
 *   not mention the app where it counts, or asks nothing.
 */
export function parseMention(body: string, appSlug: string): ParsedMention | null {
  const slug = normaliseSlug(appSlug);
  if (slug === "" || !/^[a-z0-9-]+$/.test(slug)) return null;
  if (parseCommand(body, slug) !== null) return null;
  const text = body.replace(/\r\n?/g, "\n").replace(/^\uFEFF/, "");
  const prose = proseOnly(text);
  const mention = new RegExp(String.raw`${BEFORE}@${slug}(?:\[bot\])?${AFTER}[:,]?`, "giu");
  const found = [...prose.matchAll(mention)];
  if (found.length === 0) return null;

  // Remove the mentions found in the prose (only those: the same handle in a quote stays), then the HTML comments.
  // With the blank on one side of it, so `Hi @app, add tests` reads `Hi add tests` and `Is it right @app?` `Is it right?`.
  let rest = "";
  let from = 0;
  for (const m of found) {
    let start = m.index;
    let end = m.index + m[0].length;
    const spaceAfter = /^[ \t]*/.exec(text.slice(end))?.[0].length ?? 0;
    const blankBefore = start === 0 || /\s/.test(text[start - 1] ?? "");
    if (blankBefore && spaceAfter > 0) end += spaceAfter;
    else if (blankBefore) while (start > from && /[ \t]/.test(text[start - 1] ?? "")) start -= 1;
    rest += text.slice(from, start);
    from = end;
  }
  rest += text.slice(from);
  rest = rest.replace(HTML_COMMENT, "").trim();
  if (!/[\p{L}\p{N}]/u.test(rest)) return null;
  return { text: cut(rest) };
}

/**
 * `true` when a mention's text explicitly asks for a review ("review this", "review it",
 * "review the PR / pull request / changes / diff / code", "please review", "formal review",
 * also with "re-review"): on a
 * pull request the app did not open, that request gets a formal GitHub review (as `/review`)
 * instead of an answer in a comment.
 */
export function asksForReview(text: string): boolean {
  return /\b(?:please\s+(?:re-?)?review|(?:re-?)?review\s+(?:this|it|the\s+(?:pr|pull\s+request|changes|diff|code))|formal\s+review)\b/i.test(text);
}

/**
 * `text` with every character that does not render as prose replaced by a space (newlines
 * kept), so indices still match `text`: HTML comments, fenced code blocks (up to the closing
 * fence of the same character and at least the same length, or the end), indented code blocks
 * (4+ columns, not continuing a paragraph), block quotes with their lazy continuation lines,
 * and inline code spans.
 */
function proseOnly(text: string): string {
  const blank = (s: string) => s.replace(/[^\n]/g, " ");
  const visible = text.replace(HTML_COMMENT, blank);
  const out: string[] = [];
  let fence: { char: string; length: number } | null = null;
  let quoted = false;
  let paragraph = false;
  for (const line of visible.split("\n")) {
    if (fence) {
      const close = new RegExp(String.raw`^ {0,3}${fence.char}{${fence.length},}[ \t]*$`);
      if (close.test(line)) fence = null;
      out.push(blank(line));
      continue;
    }
    const opening = FENCE.exec(line);
    if (opening) {
      const run = opening[0].trimStart();
      fence = { char: run[0] ?? "`", length: run.length };
      quoted = paragraph = false;
      out.push(blank(line));
      continue;
    }
    if (line.trim() === "") {
      quoted = paragraph = false;
      out.push(line);
      continue;
    }
    if (BLOCKQUOTE.test(line)) {
      quoted = true;
      paragraph = false;
      out.push(blank(line));
      continue;
    }
    if (quoted || (!paragraph && indentation(line) >= 4)) {
      out.push(blank(line));
      continue;
    }
    paragraph = true;
    out.push(line);
  }
  return out.join("\n").replace(CODE_SPAN, blank);
}
