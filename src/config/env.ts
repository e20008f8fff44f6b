import { z } from "zod";

import { type BudgetLimit, type BudgetPeriod, type BudgetScope, SERVER_BUDGET_SOURCE } from "../domain/budget-rules.js";
import { ConfigError } from "../domain/errors.js";
import { usdToNano } from "../domain/money.js";
import { PriceTable } from "../domain/pricing.js";

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/**
 * The server environment's variables (every one the app reads), one section after the other.
 * The private key's text (PRIVATE_KEY, or the file at PRIVATE_KEY_PATH) is read by
 * `@probot/get-private-key` in `main.ts`; its path is also hidden from the sandbox.
 */
export const ServerEnvVariables = z.object({
  /** Interface the HTTP server listens on. */
  HOST: z.string().min(1).default("localhost"),
  /** File holding the GitHub App's private key (hidden from sandboxed commands). */
  PRIVATE_KEY_PATH: z.string().min(1).optional(),
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
  /** The embedded backend's SQLite file; ignored when DATABASE_URL is set. */
  DATABASE_PATH: z.string().min(1).default("data/mission-control.sqlite"),
  /**
   * `postgres://…` selects the PostgreSQL backend (tables and the pg-boss queue in one database,
   * shared by every replica); it wins over DATABASE_PATH. Needs Node 22.12 or later.
   */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// connection string")
    .optional(),
  /** `redis://…`: Probot's GitHub throttling is shared through Redis, so several replicas respect one rate limit. */
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "REDIS_URL must be a redis:// or rediss:// URL")
    .optional(),
  /**
   * Seconds without a heartbeat after which a PostgreSQL-mode job counts as abandoned (its process
   * died) and another replica takes it over. pg-boss needs at least 10.
   */
  JOB_HEARTBEAT_SECONDS: z.coerce.number().int().min(10).default(30),
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
  /** Total memory of a sandboxed command (every process plus its tmpfs), in bytes; a cgroup limit. */
  SANDBOX_MEMORY_BYTES: positiveInt(2 * 2 ** 30),
  /** Process-count limit of a sandboxed command (cgroup pids.max). */
  SANDBOX_MAX_PROCESSES: positiveInt(256),
  /** CPU limit of a sandboxed command, in cores (cgroup cpu.max). */
  SANDBOX_CPUS: z.coerce.number().positive().max(1024).default(1),
  /** Bytes a sandboxed command may take on the clone's filesystem while it runs; killed past it. */
  SANDBOX_DISK_BYTES: positiveInt(5 * 2 ** 30),
  /** Files (inodes) a sandboxed command may create on the clone's filesystem; killed past it. */
  SANDBOX_DISK_INODES: positiveInt(500_000),
  /** Size of a sandboxed command's private /tmp, in bytes (it also counts against the memory limit). */
  SANDBOX_TMP_BYTES: positiveInt(512 * 2 ** 20),
  /**
   * `required`: a command runs only under its cgroup limits (memory, CPU, processes), else it is
   * refused naming what is missing. `off`: per-process rlimits only (weaker; the operator's choice).
   */
  SANDBOX_CGROUPS: z.enum(["required", "off"]).default("required"),
  /** Extra host folders visible read-only in the sandbox, separated by `:` (e.g. `/opt/hostedtoolcache:/opt/node`). */
  SANDBOX_READONLY_PATHS: z
    .string()
    .default("")
    .transform((value) => value.split(":").filter(Boolean))
    .pipe(z.array(z.string().startsWith("/", "SANDBOX_READONLY_PATHS entries must be absolute paths"))),
  /** Host uid (and gid) sandboxed commands run as when the app runs as root. */
  SANDBOX_UID: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 31)
    .default(65534),
  SANDBOX_GID: z.coerce
    .number()
    .int()
    .min(1)
    .max(2 ** 31)
    .default(65534),
  /** npm's registry URL as npm reads it from the environment (either spelling); for the default egress allowlist. */
  npm_config_registry: z.string().optional(),
  NPM_CONFIG_REGISTRY: z.string().optional(),
  /** pip's index URLs; for the default egress allowlist. */
  PIP_INDEX_URL: z.string().optional(),
  PIP_EXTRA_INDEX_URL: z.string().optional(),
  /**
   * Hosts the set-up step may reach through the egress proxy when SANDBOX_SETUP_NETWORK=on,
   * separated by commas (`*.example.org` matches subdomains). Default: the npm registry
   * configured on this host (npm's `registry` setting) and PIP_INDEX_URL's host.
   */
  SANDBOX_NETWORK_ALLOW: z
    .string()
    .optional()
    .transform((value) =>
      value === undefined
        ? undefined
        : value
            .split(",")
            .map((h) => h.trim())
            .filter(Boolean),
    ),
  /** Protocols the app's git may use towards the remote, separated by `:` (GIT_ALLOW_PROTOCOL). */
  GIT_ALLOWED_PROTOCOLS: z
    .string()
    .default("https:http")
    .transform((value) => value.split(":").filter(Boolean))
    .pipe(z.array(z.enum(["https", "http", "file"], "GIT_ALLOWED_PROTOCOLS may list https, http and file only")).min(1)),
  /** When set, `GET /metrics` requires `Authorization: Bearer <METRICS_TOKEN>`. */
  METRICS_TOKEN: z.string().min(16, "METRICS_TOKEN must be at least 16 characters").optional(),
  /** `1` stops every new LLM call (kill switch). */
  PAUSE: z.enum(["0", "1"]).default("0"),
  /** Server ceilings the repository config cannot raise. */
  CODER_MAX_TURNS: positiveInt(60),
  CODER_MAX_MINUTES: positiveInt(60),
  CODER_MAX_OUTPUT_TOKENS: positiveInt(400_000),
  /** The GitHub App's OAuth client id: operators sign in to `/dashboard` with GitHub (with GITHUB_CLIENT_SECRET and DASHBOARD_URL). */
  GITHUB_CLIENT_ID: z.string().min(1).optional(),
  /** The GitHub App's OAuth client secret (never logged, never sent to the browser). */
  GITHUB_CLIENT_SECRET: z.string().min(1).optional(),
  /**
   * The GitHub web host of the OAuth flow (`/login/oauth/authorize`, `/login/oauth/access_token`).
   * Default: `https://github.com`, or `${GHE_PROTOCOL}://${GHE_HOST}` with GHE_HOST.
   */
  GITHUB_OAUTH_URL: z.url().optional(),
  /** Bearer token (32+ characters) of the dashboard's server-wide operator view; compared in constant time. */
  DASHBOARD_TOKEN: z.string().min(32, "DASHBOARD_TOKEN must be at least 32 characters").optional(),
  /** The dashboard's public base URL (`https://mc.example.org`): the OAuth callback is `${DASHBOARD_URL}/dashboard/oauth/callback`. */
  DASHBOARD_URL: z.url().optional(),
  /**
   * `on`: session cookies are `Secure` with the `__Host-` prefix. `off` only for a dashboard
   * served over plain http on loopback (DASHBOARD_URL `http://localhost…` or `http://127.0.0.1…`, tests).
   */
  DASHBOARD_COOKIE_SECURE: z.enum(["on", "off"]).default("on"),
  /** How often the dashboard's live view asks for updates, in milliseconds. */
  DASHBOARD_POLL_MS: z.coerce.number().int().min(250).max(600_000).default(5_000),
  /** YAML file of the operator's notification channels and routes (`config/notifications.ts`); unset: no notifications outside GitHub. */
  NOTIFICATIONS_FILE: z.string().min(1).optional(),
});

/**
 * The server configuration: every variable of {@link ServerEnvVariables}, plus what is derived
 * from them once — the budget ceilings (`BUDGET_*`, see {@link serverBudgetLimits}) and the
 * price table (`MODEL_PRICES` over the built-in prices).
 */
export type ServerEnv = z.infer<typeof ServerEnvVariables> & {
  /** The server's budget limits (ceilings the repository config cannot raise). */
  budgetLimits: BudgetLimit[];
  /** USD per million tokens of each model. */
  prices: PriceTable;
};

/**
 * Parses the server environment.
 *
 * @param source - usually `process.env`
 * @returns the typed, defaulted environment
 * @throws {ConfigError} naming every invalid or missing variable, an unknown `BUDGET_*` variable, or malformed MODEL_PRICES
 */
export function parseServerEnv(source: NodeJS.ProcessEnv): ServerEnv {
  const result = ServerEnvVariables.safeParse(source);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`);
    throw new ConfigError(`Invalid server environment:\n  ${problems.join("\n  ")}`);
  }
  const dashboard = dashboardEnvProblems(result.data);
  if (dashboard.length > 0) throw new ConfigError(`Invalid server environment:\n  ${dashboard.join("\n  ")}`);
  const prices = new PriceTable(result.data.MODEL_PRICES);
  return { ...result.data, budgetLimits: serverBudgetLimits(source), prices };
}

/**
 * The log level before the rest of the environment is validated (start-up, and Probot's setup
 * page when the app is not registered yet): LOG_LEVEL, or `info` when it is unset or invalid.
 */
export function bootstrapLogLevel(source: NodeJS.ProcessEnv): string {
  const level = ServerEnvVariables.shape.LOG_LEVEL.safeParse(source.LOG_LEVEL);
  return level.success ? level.data : "info";
}

/**
 * The REST API base URL Probot uses: `https://api.github.com`, or
 * `${GHE_PROTOCOL}://${GHE_HOST}/api/v3` for GitHub Enterprise Server (the same rule as
 * Probot's `readEnvOptions`).
 */
export function githubBaseUrl(env: Pick<ServerEnv, "GHE_HOST" | "GHE_PROTOCOL">): string {
  return env.GHE_HOST ? `${env.GHE_PROTOCOL}://${env.GHE_HOST}/api/v3` : "https://api.github.com";
}

// ---------------------------------------------------------------------------------------------
// Budgets (BUDGET_*)

/**
 * An optional USD amount from the environment, read exactly from its decimal text (`"300.5"`)
 * into nano-dollars (300 500 000 000); at most 9 decimals, positive. An empty value counts as unset.
 */
const envNanoUsd = z.preprocess(
  (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
  z
    .string()
    .transform((text, ctx) => {
      let nano: number | undefined;
      try {
        nano = usdToNano(text);
      } catch {
        // reported below
      }
      if (nano !== undefined && nano > 0) return nano;
      ctx.addIssue({ code: "custom", input: text, message: `must be a positive USD amount with at most 9 decimals, got "${text}"` });
      return z.NEVER;
    })
    .optional(),
);

/**
 * Ceilings that apply when the operator sets none, so that spend is never unlimited: USD 10 per
 * task and USD 100 per repository and calendar month. Raise them with the variables.
 */
const DEFAULT_SERVER_BUDGETS: Readonly<Record<string, string>> = {
  BUDGET_TASK_USD: "10",
  BUDGET_REPOSITORY_MONTHLY_USD: "100",
};

/**
 * The server's budget variables. Amounts are optional USD text, parsed to nano-dollars; unset
 * means no such limit, except the {@link DEFAULT_SERVER_BUDGETS}.
 */
export const ServerBudgetEnv = z.object({
  BUDGET_GLOBAL_DAILY_USD: envNanoUsd,
  BUDGET_GLOBAL_WEEKLY_USD: envNanoUsd,
  BUDGET_GLOBAL_MONTHLY_USD: envNanoUsd,
  BUDGET_INSTALLATION_MONTHLY_USD: envNanoUsd,
  /** Default monthly ceiling of every repository. */
  BUDGET_REPOSITORY_MONTHLY_USD: envNanoUsd,
  /** Ceiling of one task over its whole life. */
  BUDGET_TASK_USD: envNanoUsd,
  BUDGET_THRESHOLD: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z.coerce.number<unknown>().gt(0).lt(1).default(0.8),
  ),
  BUDGET_ACTION: z.preprocess((value) => (typeof value === "string" && value.trim() === "" ? undefined : value), z.enum(["warn", "block"]).default("block")),
});
export type ServerBudgetEnv = z.infer<typeof ServerBudgetEnv>;

/**
 * The server's budget limits, from the environment (source {@link SERVER_BUDGET_SOURCE}):
 * BUDGET_GLOBAL_DAILY_USD, BUDGET_GLOBAL_WEEKLY_USD, BUDGET_GLOBAL_MONTHLY_USD (all spend),
 * BUDGET_INSTALLATION_MONTHLY_USD (each installation), BUDGET_REPOSITORY_MONTHLY_USD (default
 * ceiling of every repository), BUDGET_TASK_USD (each task, in total); BUDGET_THRESHOLD
 * (0 < t < 1, default 0.8) and BUDGET_ACTION (`warn` | `block`, default `block`) apply to all.
 * Amounts are positive USD with at most 9 decimals, converted exactly from their text to
 * nano-dollars (`limitNanoUsd`); unset or empty = no such limit, except BUDGET_TASK_USD and
 * BUDGET_REPOSITORY_MONTHLY_USD, which default to {@link DEFAULT_SERVER_BUDGETS}.
 *
 * @param env - usually `process.env`
 * @throws {ConfigError} naming each invalid variable, or an unknown `BUDGET_*` variable (a typo would silently lift a ceiling)
 */
export function serverBudgetLimits(env: Record<string, string | undefined>): BudgetLimit[] {
  const known = new Set(Object.keys(ServerBudgetEnv.shape));
  const unknown = Object.keys(env).filter((name) => name.startsWith("BUDGET_") && !known.has(name));
  const withDefaults: Record<string, string | undefined> = { ...env };
  for (const [name, value] of Object.entries(DEFAULT_SERVER_BUDGETS)) {
    if (withDefaults[name] === undefined || withDefaults[name]?.trim() === "") withDefaults[name] = value;
  }
  const result = ServerBudgetEnv.safeParse(withDefaults);
  const problems = [
    ...unknown.map((name) => `${name}: unknown budget variable (known: ${[...known].join(", ")})`),
    ...(result.success ? [] : result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`)),
  ];
  if (problems.length > 0 || !result.success) throw new ConfigError(`Invalid budget environment:\n  ${problems.join("\n  ")}`);
  const e = result.data;
  const base = { threshold: e.BUDGET_THRESHOLD, action: e.BUDGET_ACTION, source: SERVER_BUDGET_SOURCE };
  const entries: Array<[BudgetScope, BudgetPeriod, number | undefined]> = [
    ["global", "daily", e.BUDGET_GLOBAL_DAILY_USD],
    ["global", "weekly", e.BUDGET_GLOBAL_WEEKLY_USD],
    ["global", "monthly", e.BUDGET_GLOBAL_MONTHLY_USD],
    ["installation", "monthly", e.BUDGET_INSTALLATION_MONTHLY_USD],
    ["repository", "monthly", e.BUDGET_REPOSITORY_MONTHLY_USD],
    ["task", "total", e.BUDGET_TASK_USD],
  ];
  return entries.flatMap(([scope, period, limitNanoUsd]) => (limitNanoUsd === undefined ? [] : [{ ...base, scope, period, limitNanoUsd }]));
}

// ---------------------------------------------------------------------------------------------
// Dashboard (GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, GITHUB_OAUTH_URL, DASHBOARD_*)

/**
 * What is wrong with the dashboard's variables taken together: the OAuth client id and secret
 * come as a pair and need DASHBOARD_URL (the callback's base); cookies may lose `Secure` only
 * for a plain-http loopback DASHBOARD_URL.
 */
function dashboardEnvProblems(env: z.infer<typeof ServerEnvVariables>): string[] {
  const problems: string[] = [];
  if (Boolean(env.GITHUB_CLIENT_ID) !== Boolean(env.GITHUB_CLIENT_SECRET)) problems.push("GITHUB_CLIENT_ID and GITHUB_CLIENT_SECRET: set both or neither");
  if (env.GITHUB_CLIENT_ID && !env.DASHBOARD_URL) problems.push("DASHBOARD_URL: required with GITHUB_CLIENT_ID (the OAuth callback's base URL)");
  if (env.DASHBOARD_COOKIE_SECURE === "off" && !(env.DASHBOARD_URL && isLoopbackHttp(env.DASHBOARD_URL)))
    problems.push("DASHBOARD_COOKIE_SECURE: off is allowed only with an http://localhost or http://127.0.0.1 DASHBOARD_URL");
  return problems;
}

function isLoopbackHttp(url: string): boolean {
  const parsed = new URL(url);
  return parsed.protocol === "http:" && ["localhost", "127.0.0.1", "[::1]"].includes(parsed.hostname);
}

/**
 * The GitHub web host of the OAuth web flow: GITHUB_OAUTH_URL, else `${GHE_PROTOCOL}://${GHE_HOST}`
 * for GitHub Enterprise Server, else `https://github.com` (no trailing slash).
 */
export function githubOAuthUrl(env: Pick<ServerEnv, "GITHUB_OAUTH_URL" | "GHE_HOST" | "GHE_PROTOCOL">): string {
  if (env.GITHUB_OAUTH_URL) return env.GITHUB_OAUTH_URL.replace(/\/+$/, "");
  return env.GHE_HOST ? `${env.GHE_PROTOCOL}://${env.GHE_HOST}` : "https://github.com";
}
