/**
 * Typed errors. Every error the worker may see carries a stable `code` and a `retryable`
 * flag; the worker's translator (`jobs/failure.ts`) decides retry, fail, or tell the user
 * from these fields alone — never from `message`.
 */

/** Base class: `code` is stable and machine-readable, `userMessage` is safe to post on GitHub. */
export class MissionControlError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  /** Delay the caller asked for before a retry, in milliseconds (e.g. from `retry-after`). */
  readonly retryAfterMs: number | undefined;
  /** A short, human sentence that may be shown on the issue. Never contains secrets. */
  readonly userMessage: string;

  constructor(
    code: string,
    message: string,
    options: { retryable?: boolean; retryAfterMs?: number; userMessage?: string; cause?: unknown } = {},
  ) {
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
    super(
      "unknown_model",
      `No price is configured for model "${model}"; add it to MODEL_PRICES or choose a priced model.`,
    );
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
