/**
 * Token-like strings that must never reach a prompt, a log line, a comment or an error
 * message. Patterns follow the published formats of GitHub tokens (ghp_, gho_, ghu_, ghs_,
 * ghr_, github_pat_), Anthropic keys (sk-ant-), AWS access key ids, Slack tokens, JWTs, PEM
 * private keys, and HTTP Authorization values.
 */
const SECRET_PATTERNS: readonly RegExp[] = [
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)/g,
  /\bgh[pousr]_[A-Za-z0-9]{20,}\b/g,
  /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g,
  /\bsk-ant-[A-Za-z0-9_-]{10,}/g,
  /\bsk-[A-Za-z0-9]{32,}\b/g,
  /\bAKIA[0-9A-Z]{16}\b/g,
  /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g,
  /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g,
  /\b(authorization:\s*(?:basic|bearer|token)\s+)[A-Za-z0-9+/=._-]{8,}/gi,
  /(x-access-token:)[^@\s]+/gi,
];

/** The text put in place of a secret. */
export const REDACTED = "[REDACTED]";

/**
 * Replaces every token-like substring with `[REDACTED]`.
 *
 * @param text - any text from outside (issue bodies, git stderr, error messages)
 */
export function redactSecrets(text: string): string {
  let out = text;
  for (const pattern of SECRET_PATTERNS) {
    out = out.replace(pattern, (match, prefix?: unknown) =>
      typeof prefix === "string" && match.startsWith(prefix) ? `${prefix}${REDACTED}` : REDACTED,
    );
  }
  return out;
}
