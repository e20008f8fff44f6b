import { z } from "zod";

import { ConfigError } from "../errors.js";

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * The server environment, parsed once at start-up. APP_ID, WEBHOOK_SECRET, GHE_HOST,
 * GHE_PROTOCOL and PORT are validated here; the private key (PRIVATE_KEY or PRIVATE_KEY_PATH)
 * is read by `@probot/get-private-key` in `main.ts`, HOST is read there, and the BUDGET_*
 * variables by `serverBudgetLimits`.
 */
export const ServerEnv = z.object({
  APP_ID: z.string().regex(/^\d+$/, "APP_ID must be the numeric GitHub App id"),
  WEBHOOK_SECRET: z.string().min(1, "WEBHOOK_SECRET is required"),
  GHE_HOST: z.string().min(1).optional(),
  GHE_PROTOCOL: z.enum(["https", "http"]).default("https"),
  PORT: positiveInt(3000),
  ANTHROPIC_API_KEY: z.string().min(1, "ANTHROPIC_API_KEY is required"),
  ANTHROPIC_BASE_URL: z.url().optional(),
  /** Retries the Anthropic SDK makes itself (429, 529, 5xx, connection errors) before the job layer's own. */
  ANTHROPIC_MAX_RETRIES: z.coerce.number().int().min(0).max(10).default(2),
  /** Milliseconds before one Messages API request times out. */
  ANTHROPIC_TIMEOUT_MS: positiveInt(10 * 60_000),
  DEFAULT_MODEL: z.string().min(1).default("claude-sonnet-5-5"),
  /** JSON object: model → { input, output, cache_write_5m, cache_write_1h, cache_read } in USD per million tokens. */
  MODEL_PRICES: z.string().optional(),
  DATABASE_PATH: z.string().min(1).default("data/mission-control.sqlite"),
  WORKSPACES_DIR: z.string().min(1).default("data/workspaces"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** Jobs run at the same time, across all repositories. */
  WORKER_CONCURRENCY: positiveInt(2),
  /** How often an idle worker polls the queue, in milliseconds. */
  WORKER_POLL_MS: positiveInt(1000),
  /** A claimed job's lease, in milliseconds; renewed while the job runs, reclaimed after expiry. */
  JOB_LEASE_MS: positiveInt(60_000),
  /** Attempts before a job is marked failed. */
  JOB_MAX_ATTEMPTS: positiveInt(5),
  /** First retry delay in milliseconds; doubles with each attempt. */
  JOB_RETRY_BASE_MS: positiveInt(5_000),
  /** Ceiling of one retry delay, in milliseconds. */
  JOB_RETRY_MAX_MS: positiveInt(10 * 60_000),
  /** Largest total size of the clones under WORKSPACES_DIR, in bytes; the oldest are pruned first. */
  WORKSPACES_MAX_BYTES: positiveInt(20 * 2 ** 30),
  /** `bwrap` runs repository commands in bubblewrap; `off` runs them unsandboxed (operator's choice only). */
  SANDBOX: z.enum(["bwrap", "off"]).default("bwrap"),
  /** `on` lets the repository's `test.setup` command reach the network (dependency installs). */
  SANDBOX_SETUP_NETWORK: z.enum(["on", "off"]).default("off"),
  /** Memory limit of a sandboxed command, in bytes. */
  SANDBOX_MEMORY_BYTES: positiveInt(2 * 2 ** 30),
  /** Process-count limit of a sandboxed command. */
  SANDBOX_MAX_PROCESSES: positiveInt(256),
  /** When set, `GET /metrics` requires `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, "METRICS_TOKEN must be at least 16 characters").optional(),
  /** `1` stops every new LLM call (kill switch). */
  PAUSE: z.enum(["0", "1"]).default("0"),
  /** Server ceilings the repository config cannot raise. */
  CODER_MAX_TURNS: positiveInt(60),
  CODER_MAX_MINUTES: positiveInt(60),
  CODER_MAX_OUTPUT_TOKENS: positiveInt(400_000),
});
export type ServerEnv = z.infer<typeof ServerEnv>;

/**
 * Parses the server environment.
 *
 * @param source - usually `process.env`
 * @returns the typed, defaulted environment
 * @throws {ConfigError} naming every invalid or missing variable
 */
export function parseServerEnv(source: NodeJS.ProcessEnv): ServerEnv {
  const result = ServerEnv.safeParse(source);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid server environment:\n  ${problems.join("\n  ")}`);
  }
  return result.data;
}

/**
 * The REST API base URL Probot uses: `https://api.github.com`, or
 * `${GHE_PROTOCOL}://${GHE_HOST}/api/v3` for GitHub Enterprise Server (the same rule as
 * Probot's `readEnvOptions`).
 */
export function githubBaseUrl(env: Pick<ServerEnv, "GHE_HOST" | "GHE_PROTOCOL">): string {
  return env.GHE_HOST ? `${env.GHE_PROTOCOL}://${env.GHE_HOST}/api/v3` : "https://api.github.com";
}
