/**
 * Secrets that must never reach a prompt, a log line, a comment, a check run or an error
 * message, and the one function that removes them: {@link redactSecrets}.
 *
 * Two kinds of rule:
 * - **Token formats** that are secret wherever they appear, after their published formats:
 *   PEM private keys, GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`),
 *   Anthropic keys (`sk-ant-`) and other `sk-` keys, npm tokens (`npm_`), AWS access key ids
 *   (`AKIA…`, `ASIA…`), Slack tokens, JWTs, HTTP `Authorization` values, `x-access-token:` URLs,
 *   and the password of any URL with credentials (`redis://:pass@…`, `postgres://user:pass@…`).
 * - **Credential assignments** in configuration files and command output, where the key tells
 *   that the value is secret: npm `.npmrc` (`_authToken=`, `//host/:_authToken=`, `_auth=`,
 *   `_password=`), AWS credentials (`aws_secret_access_key = …`, `aws_session_token`),
 *   `.netrc` (`machine … login … password …`), Docker `config.json` (`"auth": "…"`,
 *   `"identitytoken"`, `"registrytoken"`), and generic `password=` / `secret:` / `token =` /
 *   `api_key: "…"` assignments. The key is kept and only the value becomes `[REDACTED]`.
 */

/** The text put in place of a secret. */
export const REDACTED = "[REDACTED]";

/**
 * One rule. The named group `value` is the secret; everything the pattern matched before it
 * is kept. Without a `value` group the whole match is the secret.
 */
interface PatternRule {
  readonly pattern: RegExp;
  /** Decides whether a matched value is really a secret (default: always). */
  readonly accept?: (value: string, context: MatchContext) => boolean;
}

/** A rule that needs more than one regular expression. */
interface FunctionRule {
  readonly apply: (text: string, options: RedactOptions) => string;
}

type SecretRule = PatternRule | FunctionRule;

/** Where a value was found, for {@link PatternRule.accept}. */
interface MatchContext {
  text: string;
  /** Offset of the match in `text`. */
  offset: number;
  /** The whole match. */
  match: string;
  groups: Record<string, string | undefined>;
}

/** `$TOKEN`, `${TOKEN}`, `${{ secrets.X }}`, `%TOKEN%`, `{{ token }}`, `<your-token>`: references and placeholders, not secrets. */
const REFERENCE = /^(?:\$\{?\{?\s*[A-Za-z_]|%[A-Za-z_][\w]*%$|\{\{|<[^>]*>?$)/;

/** A value of a key that names a credential, whatever it looks like (npm, AWS, netrc, Docker rules). */
function anyValue(value: string): boolean {
  return !value.includes(REDACTED) && !REFERENCE.test(value);
}

/** The start of the line `offset` is on, and whether only `export ` or indentation precedes it. */
function atLineStart(text: string, offset: number): boolean {
  const lineStart = text.lastIndexOf("\n", offset - 1) + 1;
  return /^[ \t]*(?:export[ \t]+)?$/.test(text.slice(lineStart, offset));
}

/**
 * Whether the value of a generic `password`/`secret`/`token`/`api_key` assignment is a secret.
 * Code is full of such keys whose values are not secrets (`token: string`, `password =
 * hash(input)`, `secret: config.secret`, `max_tokens: 4096`), so an unquoted value counts only
 * when it looks like a credential: not a call, type or path expression, not a number, and
 * holding a digit or a symbol — or when the line is an environment-file line `KEY=value`.
 * A quoted value counts unless it is a reference or a placeholder.
 */
function genericValue(value: string, context: MatchContext): boolean {
  if (!anyValue(value)) return false;
  if (/^[\d_.,:+-]+$/.test(value)) return false; // numbers, sizes, times
  if (context.groups.quote) return value.length >= 3;
  if (value.length < 3 || /[(){}[\]<>]/.test(value)) return false; // calls, indexing, generics, arrows
  if (/^[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$/.test(value)) return false; // member paths
  if (/^(?:true|false|null|none|nil|undefined|yes|no|on|off)$/i.test(value)) return false;
  // `KEY=value` without spaces, alone on its line (after `export `): an environment file or a shell assignment.
  const envLine = /^[\w.-]+=[^\s]/.test(context.match) && atLineStart(context.text, context.offset);
  if (envLine) return true;
  return /[^A-Za-z_$]/.test(value); // identifiers such as `string` or `SECRET_NAME` are code, not secrets
}

/** Keys whose value is a credential in a generic assignment (`DB_PASSWORD`, `apiKey`, `client_secret`, `X-Auth-Token`). */
const CREDENTIAL_KEY = String.raw`[\w.-]{0,40}?(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\w.-]{0,40}`;

/** A line of base64 as in the body of a PEM block (optionally after a diff's line marker). */
const BASE64_LINE = /^[ \t+-]?[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*\r?$/;

/**
 * The end of a PEM private key whose start was cut off (the tail of a log, a clipped file):
 * the `-----END … PRIVATE KEY-----` line and the base64 lines just before it. Walks back line by
 * line instead of using one regular expression, which would backtrack quadratically over a
 * long run of base64 lines without an END.
 */
function redactOrphanPemEnds(text: string, options: RedactOptions): string {
  const end = /-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----/;
  if (!end.test(text)) return text;
  const kept = (line: string) => (options.keepLines ? (options.linePrefix?.exec(line)?.[0] ?? "") : "");
  const cr = (line: string) => (line.endsWith("\r") ? "\r" : "");
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const found = end.exec(line);
    if (!found) {
      out.push(line);
      continue;
    }
    const body: string[] = [];
    while (out.length > 0 && BASE64_LINE.test(out.at(-1) ?? "")) body.unshift(out.pop() ?? "");
    const before = line.slice(0, found.index);
    const lead = /^[\s+-]*$/.test(before) ? before : "";
    const rest = line.slice(found.index + found[0].length);
    if (options.keepLines) {
      for (const b of body) out.push(`${kept(b)}${REDACTED}${cr(b)}`);
      out.push(`${lead}${REDACTED}${rest}`);
    } else {
      out.push(`${body.length > 0 ? "" : lead}${REDACTED}${rest}`);
    }
  }
  return out.join("\n");
}

const SECRET_RULES: readonly SecretRule[] = [
  // PEM private keys (RSA, EC, DSA, OPENSSH, ENCRYPTED, PKCS#8, PGP): the whole block, or through the end when cut.
  { pattern: /-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|$)/g },
  { apply: redactOrphanPemEnds },
  { pattern: /\bgh[pousr]_[A-Za-z0-9]{20,}\b/g },
  { pattern: /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g },
  { pattern: /\bsk-ant-[A-Za-z0-9_-]{10,}/g },
  { pattern: /\bsk-[A-Za-z0-9]{32,}\b/g },
  { pattern: /\bnpm_[A-Za-z0-9]{36}\b/g },
  { pattern: /\b(?:AKIA|ASIA)[0-9A-Z]{16}\b/g },
  { pattern: /\bxox[abposr]-[A-Za-z0-9-]{10,}\b/g },
  { pattern: /\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b/g },
  { pattern: /\bauthorization:\s*(?:basic|bearer|token)\s+(?<value>[A-Za-z0-9+/=._-]{8,})/gi },
  { pattern: /x-access-token:(?<value>[^@\s]+)/gi },
  // A password in a URL's user info: `redis://:secret@host`, `postgres://user:secret@host/db`, `https://user:secret@host`.
  // The user name is kept; the password runs to the last `@` before the host (an unencoded `@` in it is not cut short).
  // The scheme's length is bounded so that a long run of `a.b.c…` cannot make the search quadratic.
  { pattern: /\b[a-z][a-z0-9+.-]{0,31}:\/\/[^\s/?#@:]*:(?<value>[^\s/?#]+)@/gi, accept: anyValue },
  // .npmrc: `_authToken=…`, `//registry.example.com/:_authToken=…`, `_auth=…`, `_password=…`.
  { pattern: /(?<![\w-])_(?:authToken|auth|password)[ \t]*=[ \t]*["']?(?<value>[^\s"']+)/g, accept: anyValue },
  // AWS credentials and config files, environment variables.
  { pattern: /\baws_(?:secret_access_key|session_token|security_token)["']?[ \t]*[:=][ \t]*["']?(?<value>[^\s"',;]+)/gi, accept: anyValue },
  // .netrc: `machine host login user password secret` (on one line or several), and a line `default … password …`.
  {
    pattern: /(?:\bmachine[ \t\r\n]+\S+|^[ \t]*default)(?:[ \t\r\n]+(?:login|account|port)[ \t\r\n]+\S+)*[ \t\r\n]+password[ \t\r\n]+(?<value>\S+)/gm,
    accept: anyValue,
  },
  // Docker config.json: `"auths": { "host": { "auth": "base64(user:password)" } }` and token fields.
  { pattern: /"(?:auth|identitytoken|registrytoken)"[ \t]*:[ \t]*"(?<value>[^"\s]+)"/g, accept: anyValue },
  // Generic assignments: `password=…`, `secret: …`, `"api_key": "…"`, `token = '…'`, `X_TOKEN=…`.
  {
    pattern: new RegExp(
      String.raw`(?<![\w.-])(?<keyQuote>["']?)${CREDENTIAL_KEY}\k<keyQuote>[ \t]*(?<sep>:=|[:=])[ \t]*(?:(?<quote>["'\x60])(?<qvalue>(?:(?!\k<quote>)[^\r\n])+)\k<quote>|(?<value>[^\s"'\x60,;&]+))`,
      "gi",
    ),
    accept: genericValue,
  },
];

/** Options of {@link redactSecrets}. */
export interface RedactOptions {
  /**
   * Keep the text's line structure: a secret spanning lines (a PEM block) becomes one
   * `[REDACTED]` per line instead of one in all, so line numbers stay true (files, patches).
   */
  keepLines?: boolean;
  /** With `keepLines`: a prefix kept at the start of each redacted line (`/^[ +-]/` for a diff's line markers). */
  linePrefix?: RegExp;
}

/**
 * Replaces every secret in `text` with `[REDACTED]` (see the module comment for what counts).
 * Assignments keep their key (`password=[REDACTED]`, `"auth": "[REDACTED]"`,
 * `Authorization: Bearer [REDACTED]`); token formats are replaced whole.
 *
 * @param text - any text from outside (issue bodies, command output, files, git stderr, error messages)
 */
export function redactSecrets(text: string, options: RedactOptions = {}): string {
  let out = text;
  for (const rule of SECRET_RULES) {
    if ("apply" in rule) {
      out = rule.apply(out, options);
      continue;
    }
    const source = out;
    out = source.replace(rule.pattern, (...args: unknown[]) => {
      const match = args[0] as string;
      const last = args.at(-1);
      const groups = (typeof last === "object" && last !== null ? last : {}) as Record<string, string | undefined>;
      const offset = args.find((a, i) => i > 0 && typeof a === "number") as number;
      const value = groups.value ?? groups.qvalue;
      if (value === undefined) return redactSpan(match, options);
      if (rule.accept && !rule.accept(value, { text: source, offset, match, groups })) return match;
      const start = match.lastIndexOf(value);
      return `${match.slice(0, start)}${redactSpan(value, options)}${match.slice(start + value.length)}`;
    });
  }
  return out;
}

/** `[REDACTED]`, or with `keepLines` one `[REDACTED]` per line of `span` (each keeping its `linePrefix`). */
function redactSpan(span: string, options: RedactOptions): string {
  if (!options.keepLines || !span.includes("\n")) return REDACTED;
  return span
    .split("\n")
    .map((line, i) => {
      if (i === 0) return REDACTED;
      const prefix = options.linePrefix?.exec(line)?.[0] ?? "";
      const cr = line.endsWith("\r") ? "\r" : "";
      return `${prefix}${REDACTED}${cr}`;
    })
    .join("\n");
}
