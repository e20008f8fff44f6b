/**
 * Typed errors. Every error the worker may see carries a stable `code` and a `retryable`
 * flag; the worker's translator (`decideFailure` in `worker/worker.ts`) decides retry, fail, or tell the user
 * from these fields alone — never from `message`.
 */

import type { BudgetLimit } from "./budget-rules.js";
import { formatNanoUsd, NANO_USD_PER_USD } from "./money.js";

/** Base class: `code` is stable and machine-readable, `userMessage` is safe to post on GitHub. */
export class MissionControlError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /** Delay the caller asked for before a retry, in milliseconds (e.g. from `retry-after`). */
  readonly retryAfterMs: number | undefined;
  /** A short, human sentence that may be shown on the issue. Never contains secrets. */
  readonly userMessage: string;

  constructor(code: string, message: string, options: { retryable?: boolean; retryAfterMs?: number; userMessage?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.userMessage = options.userMessage ?? message;
  }
}

/** The server environment is invalid (missing key, malformed value). Fatal at start-up. */
export class ConfigError extends MissionControlError {
  constructor(message: string) {
    super("config_invalid", message);
  }
}

/** A model name has no price on file: its spend could not be recorded, so the call is refused. */
export class UnknownModelError extends MissionControlError {
  readonly model: string;
  constructor(model: string) {
    super("unknown_model", `No price is configured for model "${model}"; add it to MODEL_PRICES or choose a priced model.`);
    this.model = model;
  }
}

/** A GitHub REST call failed. `status` is the HTTP status (0 when no response arrived). */
export class GitHubApiError extends MissionControlError {
  readonly status: number;
  constructor(status: number, message: string, options: { retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(options.retryable ? "github_transient" : "github_failed", message, {
      ...options,
      userMessage: `GitHub answered ${status || "with a network error"} (${message}).`,
    });
    this.status = status;
  }
}

/** A Messages API call failed after the SDK's own retries. */
export class LlmApiError extends MissionControlError {
  readonly status: number;
  constructor(status: number, message: string, options: { retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(options.retryable ? "llm_transient" : "llm_failed", message, {
      ...options,
      userMessage: `The Anthropic API answered ${status || "with a network error"}.`,
    });
    this.status = status;
  }
}

/** A model-supplied path tried to leave the workspace or touch something it may not. */
export class PathEscapeError extends MissionControlError {
  readonly requestedPath: string;
  constructor(requestedPath: string, reason: string) {
    super("path_escape", `Refused path "${requestedPath}": ${reason}`);
    this.requestedPath = requestedPath;
  }
}

/** A tool call was refused or failed; its message is returned to the model as an `is_error` tool_result. */
export class ToolInputError extends MissionControlError {
  constructor(message: string) {
    super("tool_input", message);
  }
}

/** A git command failed. `stderr` has already been scrubbed of credentials. */
export class GitCommandError extends MissionControlError {
  readonly stderr: string;
  constructor(command: string, stderr: string, options: { retryable?: boolean; cause?: unknown } = {}) {
    super("git_failed", `git ${command} failed: ${stderr.trim().slice(0, 500)}`, {
      ...options,
      userMessage: `A git ${command} failed.`,
    });
    this.stderr = stderr;
  }
}

/**
 * A change the app refuses to push: it would add or move a nested repository (a gitlink, mode
 * 160000) that the base branch does not have. Not retried; the pull request says why.
 */
export class UnsafeChangeError extends MissionControlError {
  /** The offending paths. */
  readonly paths: readonly string[];
  constructor(paths: readonly string[]) {
    super("unsafe_change", `refusing to push nested repositories (gitlinks) that the base branch does not have: ${paths.join(", ")}`, {
      userMessage: `The change adds nested git repositories (${paths.map((p) => `\`${p}\``).join(", ")}) that the base branch does not have; Mission Control never pushes those.`,
    });
    this.paths = paths;
  }
}

/** The model did not produce the structured output an agent needs (e.g. never called `submit_plan`). */
export class AgentOutputError extends MissionControlError {
  constructor(agent: string, message: string) {
    super("agent_output", `${agent}: ${message}`, { userMessage: `The ${agent} did not produce a usable result: ${message}` });
  }
}

/** An agent reached a limit of its loop (turns, output tokens, wall-clock time). */
export class AgentLimitError extends MissionControlError {
  readonly limit: "turns" | "output_tokens" | "wall_clock";
  constructor(limit: "turns" | "output_tokens" | "wall_clock", message: string) {
    super("agent_limit", message, { userMessage: message });
    this.limit = limit;
  }
}

/** The job's lease was lost to another worker, or the job was cancelled: stop without side effects. */
export class JobAbortedError extends MissionControlError {
  constructor(reason: string) {
    super("job_aborted", reason);
  }
}

/** Narrowing helper for `catch (err: unknown)`. */
export function isMissionControlError(err: unknown): err is MissionControlError {
  return err instanceof MissionControlError;
}

/** A lifecycle transition that the state machine does not allow; nothing was written. */
export class IllegalTransitionError extends MissionControlError {
  readonly from: string | null;
  readonly to: string;
  constructor(taskId: number, from: string | null, to: string) {
    super("illegal_transition", `Task ${taskId} cannot go from ${from ?? "(new)"} to ${to}.`);
    this.from = from;
    this.to = to;
  }
}

/**
 * A Messages API call was refused before it was made: its worst-case cost would take a `block`
 * budget over its limit. Nothing was reserved. Not retryable: waiting for `resetsAt` (or raising
 * the limit) is a human decision.
 */
export class BudgetExceededError extends MissionControlError {
  /** The limit that refused the call. */
  readonly limit: BudgetLimit;
  /** What the limit counts for this call: `*`, the installation id, `owner/repo`, the agent, the task id. */
  readonly scopeKey: string;
  /** Nano-dollars already spent (recorded usage + held reservations) in the limit's current window. */
  readonly spentNanoUsd: number;
  /** Nano-dollars this call would need at worst. */
  readonly requestedNanoUsd: number;
  /** Epoch ms at which the window ends and spend restarts from 0; `null` for a `total` limit. */
  readonly resetsAt: number | null;

  /** @param details.scopeLabel - human name of the scope, e.g. `repository octo/widgets` */
  constructor(details: { limit: BudgetLimit; scopeKey: string; scopeLabel: string; spentNanoUsd: number; requestedNanoUsd: number; resetsAt: number | null }) {
    const { limit, scopeLabel, spentNanoUsd, requestedNanoUsd, resetsAt } = details;
    const reset = resetsAt === null ? "This limit does not reset." : `Resets ${new Date(resetsAt).toISOString().slice(0, 16).replace("T", " ")} UTC.`;
    const text =
      `Budget exceeded: ${scopeLabel} ${limit.period} limit ${budgetUsd(limit.limitNanoUsd)}, spent ${budgetUsd(spentNanoUsd)} ` +
      `(this call needs up to ${budgetUsd(requestedNanoUsd)}). ${reset}`;
    super("budget_exceeded", `${text} Limit set by ${limit.source}.`, { retryable: false, userMessage: text });
    this.limit = limit;
    this.scopeKey = details.scopeKey;
    this.spentNanoUsd = spentNanoUsd;
    this.requestedNanoUsd = requestedNanoUsd;
    this.resetsAt = resetsAt;
  }
}

/** Nano-dollars as `$1.23`; amounts under a cent keep four decimals (`$0.0042`) so they do not read as `$0.00`. */
function budgetUsd(nanoUsd: number): string {
  return formatNanoUsd(nanoUsd, nanoUsd !== 0 && Math.abs(nanoUsd) < NANO_USD_PER_USD / 100 ? 4 : 2);
}

/**
 * The command sandbox (bubblewrap) is missing or could not start, so a repository command was
 * not run. Never retried: the server needs bubblewrap installed, or the operator must opt out
 * with `SANDBOX=off`. Commands are never run unsandboxed as a fallback.
 */
export class SandboxUnavailableError extends MissionControlError {
  /** What failed, for logs (bwrap's own stderr or the spawn error), already scrubbed of secrets. */
  readonly reason: string;
  constructor(reason: string, options: { cause?: unknown } = {}) {
    super("sandbox_unavailable", `The command sandbox is unavailable: ${reason}`, {
      retryable: false,
      cause: options.cause,
      userMessage: `Repository commands cannot run on this server (${reason.slice(0, 200)}). The operator must fix the sandbox (bubblewrap, util-linux, cgroup limits: see docs/OPERATIONS.md), or set SANDBOX=off to run them without isolation.`,
    });
    this.reason = reason;
  }
}

/** New LLM calls are paused: PAUSE=1 in the server environment, or `/stop all` by an organisation owner. */
export class PausedError extends MissionControlError {
  constructor(by: string) {
    super("paused", `LLM calls are paused (${by}).`, {
      userMessage: `New LLM calls are paused (${by}). An organisation owner's \`/retry\` resumes them; PAUSE=1 must be removed by the operator.`,
    });
  }
}

/** A claimed job's kind or payload does not match its schema (`domain/jobs.ts`): it fails for good, never cast. */
export class JobPayloadError extends MissionControlError {
  readonly kind: string;
  constructor(kind: string, problems: string) {
    super("job_payload_invalid", `The ${kind} job's payload is invalid: ${problems}`, {
      userMessage: `The queued ${kind} job could not be read (its payload is invalid), so it was not run.`,
    });
    this.kind = kind;
  }
}

/**
 * A notification channel refused or could not take a message. `retryable` for a network error,
 * a timeout, HTTP 429 or 5xx, or an SMTP 4xx reply (with `retryAfterMs` from `Retry-After` when
 * given); permanent otherwise (another 4xx: a wrong URL, token or chat id). The message names the
 * channel and status only, never a URL or token.
 */
export class NotificationDeliveryError extends MissionControlError {
  readonly channel: string;
  /** HTTP status, SMTP reply code, or 0 when no answer came. */
  readonly status: number;
  constructor(channel: string, status: number, detail: string, options: { retryable: boolean; retryAfterMs?: number; cause?: unknown }) {
    super(options.retryable ? "notification_transient" : "notification_failed", `notification channel "${channel}": ${detail}`, options);
    this.channel = channel;
    this.status = status;
  }
}
