import { redactSecrets } from "../redact.js";

/**
 * Zero-width and formatting characters (U+200B–U+200F, U+2060–U+2064, U+FEFF, soft hyphen),
 * bidirectional controls (U+202A–U+202E, U+2066–U+2069, U+061C), and Unicode tag characters
 * (U+E0000–U+E007F, used to smuggle invisible instructions).
 */
const INVISIBLE = /[\u00AD\u061C\u180E\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF]|[\u{E0000}-\u{E007F}]/gu;

/** The tag names we wrap untrusted text in; their look-alikes inside the text are neutralised. */
const WRAPPER_TAGS = /<(\/?)(issue|comment|comments|title|body|plan|file|repository|file_tree|pull_request|patch|untrusted)\b/gi;

/**
 * Makes untrusted GitHub text (issue and comment bodies, titles) safe to place inside a
 * prompt's user turn: removes hidden HTML comments, invisible and bidirectional characters,
 * redacts anything token-like, and escapes look-alikes of our wrapper tags so the text cannot
 * close the `<issue>` element it is placed in.
 */
export function sanitizeUntrustedText(text: string): string {
  let out = text.normalize("NFC");
  // Invisible characters first: one inside `<!--` would otherwise hide the comment from the next step.
  out = out.replace(INVISIBLE, "");
  out = out.replace(/<!--[\s\S]*?(?:-->|$)/g, "");
  out = redactSecrets(out);
  out = out.replace(WRAPPER_TAGS, (_match, slash: string, name: string) => `&lt;${slash}${name}`);
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
 * maintainer asked for work was not seen by that maintainer. Sanitises the rest.
 */
export function commentsForPrompt(comments: readonly PromptComment[], trigger: string): PromptComment[] {
  const cutoff = Date.parse(trigger);
  return comments
    .filter((c) => Number.isNaN(cutoff) || (Date.parse(c.createdAt) <= cutoff && Date.parse(c.updatedAt) <= cutoff))
    .map((c) => ({ ...c, body: sanitizeUntrustedText(c.body) }));
}
