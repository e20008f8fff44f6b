import { z } from "zod";

import { BUDGET_AGENTS, type BudgetLimit, type BudgetPeriod, REPO_BUDGET_SOURCE } from "../domain/budget-rules.js";
import { usdToNano } from "../domain/money.js";
import { cronProblem } from "./cron.js";
import { NotificationRoutes } from "./notifications.js";

/** File name Probot's `context.config` looks up under `.github/` on the default branch. */
export const REPO_CONFIG_FILE = "mission-control.yml";

const AgentModels = z
  .object({
    architect: z.string().min(1).optional(),
    coder: z.string().min(1).optional(),
    reviewer: z.string().min(1).optional(),
    tester: z.string().min(1).optional(),
  })
  .strict();

const CoderConfig = z
  .object({
    /** Messages API calls the Coder may make in one job; the next one is never made. */
    max_turns: z.number().int().min(1).max(200).default(30),
    /** `max_tokens` of each Coder call. */
    max_tokens: z.number().int().min(256).max(64_000).default(8_192),
    /** Output tokens the Coder may produce in one job, all turns together. */
    max_output_tokens: z.number().int().min(1_000).max(2_000_000).default(100_000),
    /** Wall-clock time of one Coder job, in minutes. */
    max_minutes: z.number().min(1).max(240).default(30),
    /** Coder revisions of one PR (after reviews or failing tests) before a human is asked. */
    max_rework_cycles: z.number().int().min(0).max(20).default(3),
  })
  .strict();

const TestConfig = z
  .object({
    /** The repository's test command; detected from package.json, pyproject, Makefile, go.mod, Cargo.toml when absent. */
    command: z.string().min(1).max(1000).optional(),
    /** Installs dependencies before the tests; runs with network only if the operator allows it (SANDBOX_SETUP_NETWORK=on). */
    setup: z.string().min(1).max(1000).optional(),
    /** Wall-clock limit of the test command, in minutes. */
    timeout_minutes: z.number().min(1).max(120).default(15),
  })
  .strict();

const ReviewConfig = z
  .object({
    /** `false` limits the Reviewer to COMMENT and REQUEST_CHANGES: it never approves. */
    approve: z.boolean().default(true),
  })
  .strict();

/**
 * The `ci:` section: what the app does when the repository's own checks (GitHub Actions, other
 * apps' check suites) fail on the current head of one of its pull requests.
 */
const CiConfig = z
  .object({
    /** `true` (the default): a failure starts one Coder revision per head with the failing output as feedback. */
    fix_failures: z.boolean().default(true),
    /**
     * Check names whose failures are ignored: compared whole and case-insensitively with the
     * check run's name, the workflow's name and `Workflow / job`; `*` matches any characters.
     */
    ignore_checks: z.array(z.string().min(1).max(200)).max(100).default([]),
  })
  .strict();

/** The instruction files `instructions.files` reads by default: every kind the agents understand. */
export const DEFAULT_INSTRUCTION_FILES: readonly string[] = [
  "**/AGENTS.md",
  "CLAUDE.md",
  ".github/copilot-instructions.md",
  ".github/instructions/**/*.instructions.md",
];

/**
 * The `instructions:` section: which repository instruction files (AGENTS.md, CLAUDE.md,
 * Copilot instructions) the agents get as guidance. `instructions: false` turns it off,
 * `instructions: true` is the default.
 */
const InstructionsConfig = z.preprocess(
  (value) => (typeof value === "boolean" ? { enabled: value } : value),
  z
    .object({
      /** `false`: no instruction file is read. */
      enabled: z.boolean().default(true),
      /** Globs of the instruction files to read (default: all of them); other files are never read as guidance. */
      files: z
        .array(z.string().min(1).max(256))
        .min(1)
        .max(50)
        .default([...DEFAULT_INSTRUCTION_FILES]),
    })
    .strict(),
);

/**
 * The `memory:` section (issue 14): how many of the repository memory's learnings (`/learn`),
 * chosen by full-text search with the task's issue, plan and paths, the Architect, the Coder and
 * the Reviewer get. `memory: false` turns retrieval off (the commands still work).
 */
const MemoryConfig = z.preprocess(
  (value) => (typeof value === "boolean" ? { enabled: value } : value),
  z
    .object({
      /** `false`: no learning reaches a prompt. */
      enabled: z.boolean().default(true),
      /** Learnings given to each agent at most. */
      max_learnings: z.number().int().min(1).max(20).default(5),
    })
    .strict(),
);

const convertsToNanoUsd = (usd: number): boolean => {
  try {
    usdToNano(usd);
    return true;
  } catch {
    return false;
  }
};

/**
 * A positive USD amount with at most 9 decimals (a whole number of nano-dollars). Kept as the
 * number YAML gave (the config snapshot is stored and parsed again); {@link repoBudgetLimits}
 * converts it exactly, from its shortest decimal text (`0.1` → `"0.1"`), which is what was typed.
 */
const usdAmount = z.number().positive().refine(convertsToNanoUsd, "must be a USD amount with at most 9 decimals");

const PeriodBudget = z
  .object({
    daily_usd: usdAmount.optional(),
    weekly_usd: usdAmount.optional(),
    monthly_usd: usdAmount.optional(),
  })
  .strict();

/**
 * The `budget:` section of `.github/mission-control.yml`. Amounts are USD per UTC day, ISO week
 * (Monday 00:00 UTC) and calendar month; `per_task_usd` caps one task over its whole life.
 * Per-agent amounts count that role's spend in this repository. A repository can only add or
 * lower limits: see {@link mergeLimits}.
 */
export const RepoBudgetConfig = z
  .object({
    daily_usd: usdAmount.optional(),
    weekly_usd: usdAmount.optional(),
    monthly_usd: usdAmount.optional(),
    per_task_usd: usdAmount.optional(),
    /** Fraction of each limit at which an alert is posted, once per window. */
    threshold: z.number().gt(0).lt(1).default(0.8),
    /** `block` refuses calls over the limit; `warn` only alerts. */
    action: z.enum(["warn", "block"]).default("block"),
    agents: z
      .object({
        architect: PeriodBudget.optional(),
        coder: PeriodBudget.optional(),
        reviewer: PeriodBudget.optional(),
        tester: PeriodBudget.optional(),
      })
      .strict()
      .default({}),
  })
  .strict();
export type RepoBudgetConfig = z.infer<typeof RepoBudgetConfig>;

/**
 * The limits a repository's (validated) budget config sets, each restricted to `repository`
 * and with `source` {@link REPO_BUDGET_SOURCE}; USD amounts become nano-dollars exactly ({@link usdToNano}).
 *
 * @param config - output of `RepoBudgetConfig.parse` (or `undefined`: no limits)
 * @param repository - `owner/repo`
 */
export function repoBudgetLimits(config: RepoBudgetConfig | undefined, repository: string): BudgetLimit[] {
  if (!config) return [];
  const base = { threshold: config.threshold, action: config.action, source: REPO_BUDGET_SOURCE, repository };
  const limits: BudgetLimit[] = [];
  const periods = (amounts: z.infer<typeof PeriodBudget>): Array<[BudgetPeriod, number]> =>
    (
      [
        ["daily", amounts.daily_usd],
        ["weekly", amounts.weekly_usd],
        ["monthly", amounts.monthly_usd],
      ] as Array<[BudgetPeriod, number | undefined]>
    ).flatMap(([period, usd]): Array<[BudgetPeriod, number]> => (usd === undefined ? [] : [[period, usdToNano(usd)]]));
  for (const [period, limitNanoUsd] of periods(config)) limits.push({ ...base, scope: "repository", period, limitNanoUsd });
  if (config.per_task_usd !== undefined) limits.push({ ...base, scope: "task", period: "total", limitNanoUsd: usdToNano(config.per_task_usd) });
  for (const agent of BUDGET_AGENTS) {
    const amounts = config.agents?.[agent];
    if (!amounts) continue;
    for (const [period, limitNanoUsd] of periods(amounts)) limits.push({ ...base, scope: "agent", agent, period, limitNanoUsd });
  }
  return limits;
}

/**
 * The `orchestrator:` section (issue 14): a daily stand-up issue per repository and the follow-up
 * issues it proposes. Off unless `standup` is given.
 */
const OrchestratorConfig = z
  .object({
    /** When the stand-up is written: a five-field cron expression in an IANA time zone. Absent: no stand-up. */
    standup: z
      .object({
        cron: z.string().min(1).max(100),
        timezone: z.string().min(1).max(64).default("UTC"),
      })
      .strict()
      .superRefine((value, ctx) => {
        const problem = cronProblem(value.cron, value.timezone);
        if (problem) ctx.addIssue({ code: "custom", message: problem });
      })
      .optional(),
    /** New follow-up issues the stand-up may propose per day (0: none). */
    max_proposals: z.number().int().min(0).max(20).default(3),
    /** Label put on an issue opened with `/approve <n>` (created when missing); none when absent. */
    proposal_label: z.string().min(1).max(50).optional(),
  })
  .strict();
export type OrchestratorConfig = z.infer<typeof OrchestratorConfig>;

/** The `notifications:` section: per-repository routes among the operator's channels (by name). */
const RepoNotificationsConfig = z
  .object({
    routes: NotificationRoutes.default({}),
  })
  .strict();

/**
 * `.github/mission-control.yml`, read from the repository's default branch only. Every key is
 * optional; unknown keys are refused so that a typo is reported instead of silently ignored.
 */
export const RepoConfig = z
  .object({
    /** The label that starts work on an issue. */
    trigger_label: z.string().min(1).max(50).default("agent"),
    /** Model per agent; each falls back to the server's DEFAULT_MODEL. */
    models: AgentModels.default({}),
    coder: CoderConfig.default(CoderConfig.parse({})),
    test: TestConfig.default(TestConfig.parse({})),
    review: ReviewConfig.default(ReviewConfig.parse({})),
    budget: RepoBudgetConfig.default(RepoBudgetConfig.parse({})),
    /** Globs of paths the Coder may not change until a maintainer has run /approve on the issue or PR. */
    protected_paths: z.array(z.string().min(1).max(256)).max(100).default([".github/workflows/**"]),
    /** When true, the Coder waits for /approve of the Architect's plan. */
    require_plan_approval: z.boolean().default(false),
    /** When true, the app merges its PR once every check passed and a human approved it. Never otherwise. */
    auto_merge: z.boolean().default(false),
    /** The repository's own CI: fix failing checks on the app's pull requests (`fix_failures`), except `ignore_checks`. */
    ci: CiConfig.default(CiConfig.parse({})),
    /** Repository instruction files given to the agents as guidance: `false` turns it off; `files` chooses which are read. */
    instructions: InstructionsConfig.default({ enabled: true, files: [...DEFAULT_INSTRUCTION_FILES] }),
    /** Repository memory: the learnings relevant to a task reach the Architect, the Coder and the Reviewer (`max_learnings` at most); `false` turns it off. */
    memory: MemoryConfig.default({ enabled: true, max_learnings: 5 }),
    /** Orchestrator mode: the scheduled stand-up issue (`standup: { cron, timezone }`, off by default) and proposed follow-ups. */
    orchestrator: OrchestratorConfig.default(OrchestratorConfig.parse({})),
    /**
     * Notifications outside GitHub for this repository's events: `routes: { <event>: [channel names] }`,
     * ADDED to the operator's routes (a repository cannot silence them). Only channels the operator
     * defined in NOTIFICATIONS_FILE are used; another name is ignored (logged) — the file names no secret.
     */
    notifications: RepoNotificationsConfig.optional(),
  })
  .strict();
export type RepoConfig = z.infer<typeof RepoConfig>;

/** The configuration used when a repository has none (and, for its trigger label, an invalid one). */
export const DEFAULT_REPO_CONFIG: RepoConfig = RepoConfig.parse({});

/** Result of reading a repository's config: the config to use and, if the file was invalid, why. */
export interface RepoConfigResult {
  /**
   * The validated config. For an invalid file: the defaults, except `trigger_label`, which is
   * the file's own when that key alone is valid (so the label the maintainer chose still
   * reaches the issue, where the problems are reported). No work runs on it: see `problems`.
   */
  config: RepoConfig;
  /**
   * Human-readable problems naming the bad keys; empty when the file was valid or absent.
   * Non-empty means **fail closed**: the caller stores them with the task, and no stage calls a
   * model or runs a repository command until the file is fixed (a typo must never lift a
   * budget or limit the maintainer set).
   */
  problems: string[];
}

/**
 * Validates a parsed `.github/mission-control.yml`. Never throws: an invalid file yields the
 * defaults plus the list of problems, and the caller must stop work while there are problems
 * (the pipeline does: the task waits in `blocked` until the file is fixed and `/retry`).
 *
 * @param raw - the YAML document as parsed by Probot's config plugin (`null` when absent)
 */
export function parseRepoConfig(raw: unknown): RepoConfigResult {
  if (raw === null || raw === undefined) return { config: DEFAULT_REPO_CONFIG, problems: [] };
  const result = RepoConfig.safeParse(raw);
  if (result.success) return { config: result.data, problems: [] };
  const problems = result.error.issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
    return `${key}: ${issue.message}`;
  });
  const label = RepoConfig.shape.trigger_label.safeParse((raw as { trigger_label?: unknown } | null)?.trigger_label);
  return { config: { ...DEFAULT_REPO_CONFIG, trigger_label: label.success ? label.data : DEFAULT_REPO_CONFIG.trigger_label }, problems };
}
