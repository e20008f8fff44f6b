import type { ColumnType, Generated, Insertable, Selectable, Updateable } from "kysely";

import type { JobKind } from "../domain/jobs.js";
import type { TaskStage, TaskState } from "../domain/task-state.js";

/** GitHub deliveries already turned into jobs: a redelivery of the same `X-GitHub-Delivery` is a no-op. */
export interface DeliveriesTable {
  delivery_id: string;
  event: string;
  /** Unix epoch milliseconds. */
  received_at: number;
}

/** State of one job in the durable queue. */
export type JobState = "queued" | "running" | "succeeded" | "failed" | "cancelled";

/** The durable job queue. */
export interface JobsTable {
  id: Generated<number>;
  /** What this job does (`domain/jobs.ts`): a stage (`plan`, `code`, `review`, …), `command`, `intake`. */
  kind: JobKind;
  /** `null` for an `intake` job, which runs before its task exists. */
  task_id: number | null;
  installation_id: number;
  /** `owner/repo#number`: at most one job per key runs at a time. */
  lock_key: string;
  /** Unique key that makes enqueueing idempotent (delivery id or task run + stage). */
  dedupe_key: string;
  delivery_id: string | null;
  /** JSON payload, parsed by the stage. */
  payload: string;
  state: JobState;
  attempts: number;
  max_attempts: number;
  /** Not before this time (epoch ms). */
  run_after: number;
  lease_owner: string | null;
  /** Epoch ms; a running job whose lease expired may be claimed again. */
  lease_expires_at: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  finished_at: number | null;
}

/** One task = the work on one issue: its stage, the GitHub objects it made, and why it stopped. */
export interface TasksTable {
  id: Generated<number>;
  installation_id: number;
  owner: string;
  repo: string;
  issue_number: number;
  /** Increments each time the task is started again (new label after a failure). */
  run: number;
  /** The task's state (`domain/task-state.ts`); `new` until its first stage starts. */
  stage: TaskStage;
  /** Who started it (GitHub login). */
  triggered_by: string;
  /** The repository's clone URL from the payload (GitHub Enterprise aware). */
  clone_url: string;
  default_branch: string;
  /** The validated repository config snapshot, JSON. */
  config: string;
  tracking_comment_id: number | null;
  plan_comment_id: number | null;
  plan_url: string | null;
  /** The Architect's structured plan, JSON. */
  plan: string | null;
  branch: string | null;
  pr_number: number | null;
  pr_url: string | null;
  review_url: string | null;
  review_verdict: string | null;
  failure_reason: string | null;
  created_at: number;
  updated_at: number;
  /** Coder revisions made after a review or failing tests. */
  rework_cycles: Generated<number>;
  /** Head sha of the PR as the app last pushed or saw it. */
  head_sha: string | null;
  /** Head sha the Reviewer last reviewed (a re-review comments only on what changed since). */
  reviewed_sha: string | null;
  /** Conclusion of the last Tester run on head_sha: success, failure, neutral. */
  tests_conclusion: string | null;
  blocked_reason: string | null;
  /** Login of the maintainer who approved changes to protected paths with /approve. */
  approved_by: string | null;
  /** Login of the maintainer who approved this run's plan with /approve (reset on every new run). */
  plan_approved_by: string | null;
  /** Epoch ms the current run started and ended. */
  started_at: number | null;
  finished_at: number | null;
  /** GitHub user id of triggered_by (for the Co-authored-by trailer). */
  triggered_by_id: number | null;
  /**
   * The issue's title and body as they were when a maintainer triggered the work (the label,
   * `/plan`, `/code`, `/retry` on the issue), raw (sanitised only when a prompt is built). Every
   * agent reads this copy; an edit made afterwards never reaches a prompt. `null` until stored.
   */
  issue_title: string | null;
  issue_body: string | null;
  /**
   * Problems of an invalid `.github/mission-control.yml` (JSON array of strings) as last read;
   * `null` when the file was valid or absent. While set, no stage calls a model: the task waits
   * in `blocked` until the file is fixed and a maintainer comments `/retry`.
   */
  config_problems: string | null;
  /** Notes shown in the tracking comment, JSON object `{ [key]: Markdown }`; cleared by a new run. */
  tracking_notes: string | null;
}

/** Installations whose LLM calls an organisation owner paused with `/stop all`. */
export interface PausesTable {
  installation_id: number;
  paused_by: string;
  paused_at: number;
}

/** Every lifecycle transition a task took: from, to, why, who, when. */
export interface TransitionsTable {
  id: Generated<number>;
  task_id: number;
  from_state: TaskState | null;
  to_state: TaskState;
  reason: string;
  actor: string;
  created_at: number;
}

/** One row per Messages API call. */
export interface LlmUsageTable {
  id: Generated<number>;
  created_at: number;
  installation_id: number;
  repository: string;
  subject_number: number | null;
  task_id: number | null;
  /** The job's id (a SQLite job's integer id reads back as a number). */
  job_id: ColumnType<string | number | null, string | null, string | null>;
  agent: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /**
   * Nano-dollars (1 USD = 10⁹ n$; `domain/money.ts`), computed exactly from the usage fields and
   * the price table in force. `bigint` on PostgreSQL, `integer` on SQLite.
   */
  cost_nano_usd: number;
  /** The API's `request-id` header. */
  request_id: string | null;
}

export interface Database {
  deliveries: DeliveriesTable;
  jobs: JobsTable;
  tasks: TasksTable;
  llm_usage: LlmUsageTable;
  transitions: TransitionsTable;
  budget_reservations: BudgetReservationsTable;
  budget_alerts: BudgetAlertsTable;
  pauses: PausesTable;
}

export type Job = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type Task = Selectable<TasksTable>;
export type NewTask = Insertable<TasksTable>;
export type TaskUpdate = Updateable<TasksTable>;
export type LlmUsage = Selectable<LlmUsageTable>;
export type Transition = Selectable<TransitionsTable>;
export type NewLlmUsage = Insertable<LlmUsageTable>;

/** State of a budget reservation: `held` counts against budgets until `settled` (real cost in llm_usage) or `released`. */
export type BudgetReservationStatus = "held" | "settled" | "released";

/** Worst-case cost held against the budgets before a Messages API call (see `ledger/budgets.ts`). */
export interface BudgetReservationsTable {
  id: Generated<number>;
  /** Epoch ms; the reservation counts in the budget windows containing this instant. */
  created_at: number;
  installation_id: number;
  /** `owner/repo`. */
  repository: string;
  agent: string;
  task_id: number;
  /** The job's id (a SQLite job's integer id reads back as a number). */
  job_id: ColumnType<string | number | null, string | null, string | null>;
  /** Nano-dollars held (1 USD = 10⁹ n$). `bigint` on PostgreSQL, `integer` on SQLite. */
  amount_nano_usd: number;
  status: BudgetReservationStatus;
  /** Epoch ms of settle or release. */
  settled_at: number | null;
}

/** Budget threshold alerts already raised: one row per scope, key, period, window and threshold. */
export interface BudgetAlertsTable {
  id: Generated<number>;
  scope: string;
  scope_key: string;
  period: string;
  /** Epoch ms of the window's start (0 for `total`). */
  period_start: number;
  /** Fraction of the limit (0..1) at which the alert fired; 1 for "exceeded". */
  threshold: number;
  created_at: number;
}

export type BudgetReservation = Selectable<BudgetReservationsTable>;
