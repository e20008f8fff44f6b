/**
 * What the Coder is told when the repository's own CI fails on the app's pull request: the
 * failing part of each failed GitHub Actions job's log, or a failed check run's output and
 * annotations, cleaned (ANSI codes, timestamps), redacted, escaped and capped. Pure functions:
 * the reads are in `ci-intake.ts`.
 *
 * The log format is GitHub's (`GET /repos/{owner}/{repo}/actions/jobs/{job_id}/logs`): a UTF-8
 * BOM, then one line per output line, each prefixed with an ISO 8601 timestamp and a space;
 * each step starts with a `##[group]Run <command>` line (the header, closed by `##[endgroup]`),
 * post-job steps with `Post job cleanup.`, the end with `Cleaning up orphan processes`; errors —
 * the runner's own (`Process completed with exit code 1.`) and those a tool reports with the
 * `::error::` workflow command — are `##[error]<message>` lines
 * (https://docs.github.com/actions/reference/workflow-commands-for-github-actions).
 */
import { escapeCommandOutput } from "../prompt/index.js";

/** Bytes (UTF-8) of the whole CI feedback a revision gets: every failure together, notes included. */
export const CI_FEEDBACK_MAX_BYTES = 12_000;
/** Failures shown in detail (log or output); further ones are only named. */
export const CI_DETAILED_FAILURES = 3;
/** Bytes of a job log read from its end (`downloadJobLog`): a larger log's start is never read. */
export const CI_LOG_READ_BYTES = 8 * 1024 * 1024;
/** Characters of one log line kept; a longer line (minified code, a JSON dump) is cut in its middle. */
const MAX_LINE_CHARS = 400;
/** Lines kept before and after each error line of the failing step. */
const CONTEXT_BEFORE = 3;
const CONTEXT_AFTER = 12;
/** Last lines of the failing step always kept (a test runner's summary, the exit code). */
const TAIL_LINES = 15;
/** Lines of the failing step's header (`##[group]Run …` up to `##[endgroup]`) kept. */
const HEADER_LINES = 6;
/** Bytes a "[… N lines cut …]" marker line takes at most. */
const MARKER_BYTES = 32;
/** Annotations of one check run shown. */
const MAX_ANNOTATIONS = 30;

/** The timestamp GitHub puts before every log line: `2025-03-11T14:02:07.0235198Z `. */
const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z ?/;
/**
 * A line that reports a failure in the output of common tools: GitHub's `##[error]`, test
 * runners (vitest/jest `FAIL`, `×`/`✕`/`✗`, `●`, `AssertionError`, `Expected`/`Received`, TAP
 * `not ok`, pytest `FAILED`/`E   `), compilers and linters (`error TS2322`, `error:`, ESLint's
 * `12:5  error`, `✖ 3 problems`, `npm ERR!`), and runtimes (`Error:`, `Traceback`, `panic:`,
 * `Exception`).
 */
const ERROR_LINE =
  /##\[error\]|\bFAIL(?:ED|URE)?\b|\bfail(?:ed|ing|ure)\b|[×✕✗✖●]|AssertionError|\bExpected\b|\bReceived\b|^not ok\b|^E {2,}|\berror(?:\[|\s*TS\d+|:)|^\s*\d+:\d+\s+error\b|\bERR!|\b[A-Z]\w*Error\b|Traceback|\bpanic:|Exception\b/;

/** Bytes of `text` in UTF-8. */
export function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, "utf8");
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** `text` cut to at most `maxBytes` UTF-8 bytes, never in the middle of a character. */
function cutBytes(text: string, maxBytes: number): string {
  if (utf8Bytes(text) <= maxBytes) return text;
  let cut = Buffer.from(text, "utf8").subarray(0, Math.max(0, maxBytes)).toString("utf8");
  // A character cut in two decodes as U+FFFD at the end: drop it.
  while (cut.endsWith("\uFFFD") && utf8Bytes(cut) > maxBytes - 3) cut = cut.slice(0, -1);
  return cut;
}

/**
 * A log made ready for a prompt, line by line: the BOM and ANSI escape sequences removed,
 * each line's timestamp removed, carriage returns turned into line breaks, secrets redacted and
 * prompt tags escaped (`escapeCommandOutput`, over the whole log, before anything is cut, so a
 * secret is never cut in two and missed; after the timestamps, so rules anchored at a line's
 * start apply), and lines over 400 characters cut in their middle.
 */
export function normaliseActionsLog(raw: string): string[] {
  // Timestamps go first: redaction rules anchored at a line's start (`KEY=value`) must see the line as the step printed it.
  const untimed = raw
    .replace(/^\uFEFF/, "")
    .split("\n")
    .map((line) => line.replace(TIMESTAMP, ""))
    .join("\n");
  const text = escapeCommandOutput(untimed);
  const lines = text.split("\n").map((bare) => {
    if (bare.length <= MAX_LINE_CHARS) return bare;
    const head = bare.slice(0, MAX_LINE_CHARS - 100);
    const tail = bare.slice(-80);
    return `${head} [… ${fmt(bare.length - head.length - tail.length)} characters cut …] ${tail}`;
  });
  if (lines.at(-1) === "") lines.pop();
  return lines;
}

/** A step of a job log: its title and its lines `[start, end)`. */
export interface LogStep {
  title: string;
  start: number;
  end: number;
}

/** Splits a normalised log into steps: `Set up job`, each `##[group]Run …`, `Post job cleanup`, `Complete job`. */
export function splitSteps(lines: readonly string[]): LogStep[] {
  const steps: LogStep[] = [];
  let current: LogStep = { title: "Set up job", start: 0, end: 0 };
  const begin = (title: string, at: number) => {
    current.end = at;
    if (current.end > current.start) steps.push(current);
    current = { title, start: at, end: at };
  };
  lines.forEach((line, i) => {
    if (line.startsWith("##[group]Run ")) begin(line.slice("##[group]".length).trim(), i);
    else if (line.trim() === "Post job cleanup.") begin("Post job cleanup", i);
    else if (line.trim() === "Cleaning up orphan processes") begin("Complete job", i);
  });
  begin("", lines.length);
  return steps;
}

/** What {@link trimActionsLog} kept of a job log. */
export interface TrimmedLog {
  /** The kept lines, each cut part replaced by a `[… N lines cut …]` line. */
  text: string;
  /** The failing step's title (`Run npm test`), or `null` when the log has no steps. */
  failingStep: string | null;
  /** Bytes and lines of the log as given (before cleaning). */
  originalBytes: number;
  originalLines: number;
  /** Bytes and lines of `text`. */
  keptBytes: number;
  keptLines: number;
  /** One sentence saying what was kept and what was cut. */
  note: string;
  /** `false` when error lines of the failing step were left out for want of room. */
  complete: boolean;
}

/**
 * Keeps the failing part of a GitHub Actions job log within `maxBytes` (UTF-8): the **last step
 * with an `##[error]` line** (else the last `Run` step), and of it — when it does not fit whole —
 * its header (the command), every error line ({@link ERROR_LINE}) with 3 lines before and 12
 * after, and its last 15 lines; earlier error windows go first when even that is too long (the
 * end of the step, with the summary and the exit code, is kept). Every cut is marked with a
 * `[… N lines cut …]` line, and `note` says what the text is. Lines are cleaned first
 * ({@link normaliseActionsLog}: ANSI, timestamps, secrets, prompt tags).
 *
 * @param raw - the log as GitHub serves it (or its end)
 * @param maxBytes - the most bytes `text` may have (at least a few hundred)
 */
export function trimActionsLog(raw: string, maxBytes: number): TrimmedLog {
  const lines = normaliseActionsLog(raw);
  const originalBytes = utf8Bytes(raw);
  const originalLines = lines.length;
  const steps = splitSteps(lines);
  const isError = (i: number) => ERROR_LINE.test(lines[i] ?? "");
  const failing =
    [...steps].reverse().find((s) => lines.slice(s.start, s.end).some((l) => l.startsWith("##[error]"))) ??
    [...steps].reverse().find((s) => s.title.startsWith("Run ")) ??
    null;
  const start = failing?.start ?? 0;
  const end = failing?.end ?? lines.length;

  // The ranges kept, in order of priority: header, tail, then error windows from the first.
  const header: [number, number] = [start, Math.min(end, start + headerLength(lines, start, end))];
  const tail: [number, number] = [Math.max(header[1], end - TAIL_LINES), end];
  // One window per error line, in order; overlapping windows share their lines.
  const errorLines: number[] = [];
  for (let i = header[1]; i < tail[0]; i++) if (isError(i)) errorLines.push(i);

  const render = (ranges: Array<[number, number]>): string => {
    const sorted = [...ranges].filter(([a, b]) => b > a).sort((a, b) => a[0] - b[0]);
    const out: string[] = [];
    let at = 0;
    for (const [a, b] of sorted) {
      if (a > at) out.push(`[… ${fmt(a - at)} line${a - at === 1 ? "" : "s"} cut …]`);
      // One line at a time: a spread of a 10⁵-line step would overflow the call stack.
      for (let k = Math.max(a, at); k < b; k++) out.push(lines[k] ?? "");
      at = Math.max(at, b);
    }
    if (at < lines.length) out.push(`[… ${fmt(lines.length - at)} line${lines.length - at === 1 ? "" : "s"} cut …]`);
    return out.join("\n");
  };

  const whole = render([[start, end]]);
  let text: string;
  let kind: string;
  let complete = true;
  if (utf8Bytes(whole) <= maxBytes) {
    text = whole;
    kind = "the whole failing step";
  } else {
    // Error windows are added from the first while they fit: the cost of each is its new lines
    // plus at most one "[… N lines cut …]" marker (every marker is at most MARKER_BYTES).
    const kept: Array<[number, number]> = [header, tail];
    const taken = new Set<number>();
    const lineBytes = (i: number) => utf8Bytes(lines[i] ?? "") + 1;
    let cost = utf8Bytes(render(kept));
    let shown = 0;
    for (const i of errorLines) {
      const from = Math.max(header[1], i - CONTEXT_BEFORE);
      const to = Math.min(tail[0], i + CONTEXT_AFTER + 1);
      let added = MARKER_BYTES;
      for (let k = from; k < to; k++) if (!taken.has(k)) added += lineBytes(k);
      if (cost + added > maxBytes) break;
      cost += added;
      for (let k = from; k < to; k++) taken.add(k);
      kept.push([from, to]);
      shown++;
    }
    text = render(kept);
    complete = shown === errorLines.length;
    const cutNote = shown < errorLines.length ? ` (the first ${fmt(shown)} of its ${fmt(errorLines.length)} error lines; the rest did not fit)` : "";
    kind = `the failing step's command, its error lines with context${cutNote} and its last ${TAIL_LINES} lines`;
    // Even header and tail may not fit (very long lines): keep the end.
    if (utf8Bytes(text) > maxBytes) {
      const marker = "[… cut at the size cap …]\n";
      text = marker + cutBytesFromEnd(text, maxBytes - utf8Bytes(marker));
      kind = "the end of the failing step";
      complete = false;
    }
  }
  const keptLines = text.split("\n").filter((l) => !/^\[… [\d,]+ lines? cut …\]$/.test(l)).length;
  const stepName = failing ? `"${failing.title}"` : "(no steps found)";
  const note =
    `The log has ${fmt(originalLines)} lines (${fmt(originalBytes)} bytes); kept ${kind} of step ${stepName}: ` +
    `${fmt(keptLines)} lines, ${fmt(utf8Bytes(text))} bytes. ANSI colours and timestamps were removed; cut parts are marked "[… N lines cut …]".`;
  return { text, failingStep: failing?.title ?? null, originalBytes, originalLines, keptBytes: utf8Bytes(text), keptLines, note, complete };
}

/** Lines of the step header at `start`: up to its `##[endgroup]`, at most {@link HEADER_LINES}. */
function headerLength(lines: readonly string[], start: number, end: number): number {
  if (!(lines[start] ?? "").startsWith("##[group]")) return Math.min(1, end - start);
  for (let i = start; i < end && i - start < 50; i++) if (lines[i] === "##[endgroup]") return Math.min(i - start, HEADER_LINES);
  return Math.min(HEADER_LINES, end - start);
}

/** The last `maxBytes` bytes of `text`, starting at a line. */
function cutBytesFromEnd(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  const end = bytes.subarray(bytes.length - maxBytes).toString("utf8");
  const newline = end.indexOf("\n");
  return newline >= 0 ? end.slice(newline + 1) : end.replace(/^\uFFFD+/, "");
}

/** A failed GitHub Actions job, as the intake found it. */
export interface FailedJob {
  kind: "actions_job";
  /** `Workflow / job`, as GitHub lists the check. */
  name: string;
  conclusion: string;
  url: string | null;
  /** Names of the job's steps that failed (from the jobs API). */
  failedSteps: readonly string[];
  /** The log's end (`downloadJobLog`), or why there is none (`HTTP 410: …`). */
  log: { text: string; droppedBytes: number } | { unavailable: string };
}

/** A failed check run of another app (not GitHub Actions), with what that app reported. */
export interface FailedCheckRun {
  kind: "check_run";
  name: string;
  app: string | null;
  conclusion: string;
  url: string | null;
  output: { title: string | null; summary: string | null; text: string | null };
  annotations: Array<{ path: string; startLine: number; endLine: number; level: string; title: string | null; message: string }>;
}

export type CiFailure = FailedJob | FailedCheckRun;

/** The feedback text of a CI revision, and what it is made of. */
export interface CiFeedback {
  /** The text (at most the cap, in UTF-8 bytes), for `<feedback source="ci">`. */
  text: string;
  /** The failed checks' names, for the tracking comment. */
  checkNames: string[];
  /** Per detailed job log: the failing step and the sizes before and after trimming. */
  logs: Array<{ name: string; failingStep: string | null; originalBytes: number; keptBytes: number }>;
}

/**
 * Builds the CI feedback of one head: a header naming the commit and every failed check, then
 * up to {@link CI_DETAILED_FAILURES} failures in detail — an Actions job's failed steps and
 * trimmed log ({@link trimActionsLog}), or a check run's title, summary, text and annotations —
 * each within an equal share of `maxBytes`; other failed checks on the commit are named. The
 * whole text never exceeds `maxBytes` (a last cut says so). Untrusted parts (logs, outputs,
 * names) are redacted and their prompt tags escaped here; the Coder's prompt escapes the whole
 * again.
 *
 * @param input.others - names of other failed checks on the same commit (not in `failures`)
 */
export function buildCiFeedback(
  input: { headSha: string; failures: readonly CiFailure[]; others?: readonly string[] },
  maxBytes: number = CI_FEEDBACK_MAX_BYTES,
): CiFeedback {
  const names = input.failures.map((f) => f.name);
  const others = (input.others ?? []).filter((n) => !names.includes(n));
  const detailed = input.failures.slice(0, CI_DETAILED_FAILURES);
  const notShown = input.failures.slice(CI_DETAILED_FAILURES).map((f) => f.name);
  const header = [
    `The repository's own CI failed on ${input.headSha.slice(0, 12)}, the pull request's current head.`,
    `Failed: ${input.failures.map((f) => `${safeName(f.name)} (${f.conclusion})`).join(", ")}.`,
    others.length > 0 ? `Other checks that also failed on this commit (not shown): ${others.map(safeName).join(", ")}.` : "",
    notShown.length > 0 ? `Not shown in detail (the size cap): ${notShown.map(safeName).join(", ")}.` : "",
    "Fix what makes these checks fail. What follows is the failing part of each, as the checks reported it.",
  ]
    .filter(Boolean)
    .join("\n");
  const share = Math.floor((maxBytes - utf8Bytes(header) - 64) / Math.max(1, detailed.length));
  // Each failure gets an equal share; what a short one leaves is shared among those that were cut.
  let built = detailed.map((failure) => section(failure, share));
  const left = share * built.length - built.reduce((sum, b) => sum + utf8Bytes(b.text), 0);
  const cut = built.filter((b) => !b.complete).length;
  if (cut > 0 && left > 0) built = built.map((b, i) => (b.complete ? b : section(detailed[i] as CiFailure, share + Math.floor(left / cut))));
  const logs = built.flatMap((b) => (b.log ? [b.log] : []));
  const sections = built.map((b) => b.text);
  const text = [header, ...sections].join("\n\n");
  if (utf8Bytes(text) <= maxBytes) return { text, checkNames: [...names, ...others], logs };
  const marker = "\n[… the CI feedback was cut here, at its size cap …]";
  return { text: cutBytes(text, maxBytes - utf8Bytes(marker)) + marker, checkNames: [...names, ...others], logs };
}

/** One failure's section of the feedback within `maxBytes`: its title, then its trimmed log or its check run's output. */
function section(failure: CiFailure, maxBytes: number): { text: string; complete: boolean; log?: CiFeedback["logs"][number] } {
  const title = `## ${safeName(failure.name)} — ${failure.conclusion}${failure.url ? ` (${escapeCommandOutput(failure.url)})` : ""}`;
  if (failure.kind === "check_run") return { text: `${title}\n${renderCheckRun(failure, maxBytes - utf8Bytes(title) - 16)}`, complete: true };
  const steps =
    failure.failedSteps.length > 0 ? `Failed step${failure.failedSteps.length === 1 ? "" : "s"}: ${failure.failedSteps.map(safeName).join(", ")}.` : "";
  if ("unavailable" in failure.log) {
    return {
      text: [title, steps, `The job's log could not be read: ${escapeCommandOutput(failure.log.unavailable)}.`].filter(Boolean).join("\n"),
      complete: true,
    };
  }
  const intro = [steps, failure.log.droppedBytes > 0 ? `(Only the last ${fmt(utf8Bytes(failure.log.text))} bytes of the log were read.)` : ""]
    .filter(Boolean)
    .join("\n");
  // 400: the note and the fences around the log.
  const trimmed = trimActionsLog(failure.log.text, Math.max(200, maxBytes - utf8Bytes(title) - utf8Bytes(intro) - 400));
  return {
    text: [title, intro, trimmed.note, "```", trimmed.text, "```"].filter(Boolean).join("\n"),
    complete: trimmed.complete,
    log: { name: failure.name, failingStep: trimmed.failingStep, originalBytes: trimmed.originalBytes, keptBytes: trimmed.keptBytes },
  };
}

/** A check run's output and annotations within `maxBytes`. */
function renderCheckRun(run: FailedCheckRun, maxBytes: number): string {
  const clean = (value: string | null, limit: number) => (value ? cutBytes(escapeCommandOutput(value).trim(), limit) : "");
  const annotations = run.annotations
    .filter((a) => a.level !== "notice")
    .slice(0, MAX_ANNOTATIONS)
    .map((a) => {
      const where = `${a.path}:${a.startLine}${a.endLine !== a.startLine ? `-${a.endLine}` : ""}`;
      const message = a.message.split("\n").slice(0, 6).join("\n  ");
      return `- ${where} ${a.level}${a.title ? ` ${a.title}` : ""}: ${message}`;
    });
  const title = clean(run.output.title, 300);
  const annotationText = annotations.length > 0 ? cutBytes(escapeCommandOutput(`Annotations:\n${annotations.join("\n")}`), Math.floor(maxBytes / 3)) : "";
  const rest = Math.max(200, maxBytes - utf8Bytes(title) - utf8Bytes(annotationText) - 64);
  const summary = clean(run.output.summary, Math.floor(rest / 2));
  const text = clean(run.output.text, rest - utf8Bytes(summary));
  const parts = [
    `Reported by the check's app${run.app ? ` (${safeName(run.app)})` : ""}:`,
    title ? `Title: ${title}` : "",
    summary ? `Summary:\n${summary}` : "",
    text ? `Details:\n${text}` : "",
    annotationText,
  ].filter(Boolean);
  const out = parts.join("\n");
  return utf8Bytes(out) <= maxBytes ? out : `${cutBytes(out, maxBytes - 40)}\n[… cut at the size cap …]`;
}

/**
 * A check's name as written in app-made Markdown and feedback: one line, no backticks, at most
 * 100 characters, in backticks (so GitHub renders no mention, link or markup from it).
 */
export function safeName(name: string): string {
  const flat = escapeCommandOutput(name)
    .replace(/[\r\n\t]+/g, " ")
    .replace(/`/g, "'")
    .trim();
  return `\`${flat.length > 100 ? `${flat.slice(0, 99)}…` : flat || "(unnamed)"}\``;
}

/**
 * `true` when a check's `name` matches one of `patterns` (`ci.ignore_checks`): compared whole
 * and case-insensitively, `*` matching any run of characters (`Lint*`, `* / coverage`). Every
 * other character is literal. The readers of the checks apply it through {@link isIgnoredCheckRun}.
 */
export function isIgnoredCheck(name: string, patterns: readonly string[]): boolean {
  const subject = name.toLowerCase();
  return patterns.some((pattern) => wildcardMatch(pattern.toLowerCase(), subject));
}

/**
 * `true` when a failed or listed check is in `ci.ignore_checks` ({@link isIgnoredCheck} for each
 * name it goes by) — the one rule every reader of the checks applies:
 *
 * - `workflow` known (a workflow run's job, a check suite's run: the workflow's or the suite's
 *   name): the check run's `name`, the `workflow` alone, or `Workflow / name`;
 * - `workflow` unknown (`null`: a check run from the commit's listing, which does not name its
 *   workflow): the `name`, or a pattern of the form `<workflow> / <job>` whose `<job>` part (after
 *   its first ` / `) matches the name — so `CI / coverage` also ignores a check run `coverage`.
 */
export function isIgnoredCheckRun(check: { name: string; workflow: string | null }, patterns: readonly string[]): boolean {
  if (check.workflow !== null) {
    return [check.name, check.workflow, `${check.workflow} / ${check.name}`].some((name) => isIgnoredCheck(name, patterns));
  }
  const subject = check.name.toLowerCase();
  return (
    isIgnoredCheck(check.name, patterns) ||
    patterns.some((pattern) => {
      const at = pattern.indexOf(" / ");
      return at >= 0 && wildcardMatch(pattern.slice(at + 3).toLowerCase(), subject);
    })
  );
}

/**
 * `*`-only wildcard matching in O(pattern × text) time whatever the pattern (a regex of many
 * `.*` backtracks exponentially on a near miss: a writer's `ignore_checks` entry could stall the
 * process). Not a glob: `*` also matches `/`, as in check names like `CI / lint`.
 */
function wildcardMatch(pattern: string, text: string): boolean {
  let p = 0;
  let t = 0;
  let star = -1;
  let resume = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] !== "*" && pattern[p] === text[t]) {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      resume = t;
    } else if (star !== -1) {
      p = star + 1;
      t = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === "*") p++;
  return p === pattern.length;
}

/** The tracking comment's note for a CI revision: the commit and the failed checks (at most 5 named). */
export function ciTrackingNote(headSha: string, checkNames: readonly string[]): string {
  const shown = checkNames.slice(0, 5).map(safeName).join(", ");
  const more = checkNames.length > 5 ? ` and ${checkNames.length - 5} more` : "";
  return `🔴 The repository's checks failed on \`${headSha.slice(0, 7)}\`: ${shown}${more}. Their failing output went to the Coder as a revision (it counts as a rework cycle).`;
}
