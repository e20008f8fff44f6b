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
  dashboard_sessions: DashboardSessionsTable;
  learnings: LearningsTable;
  learning_proposals: LearningProposalsTable;
  repository_schedules: RepositorySchedulesTable;
  follow_up_proposals: FollowUpProposalsTable;
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

/** A dashboard session (`app/dashboard`): the cookie carries the id, this row its SHA-256. */
export interface DashboardSessionsTable {
  /** SHA-256 of the session id, hex; the id itself is never stored. */
  id_hash: string;
  /** The GitHub login, or `operator` for a DASHBOARD_TOKEN session. */
  login: string;
  /** The GitHub user id; `null` for the operator. */
  user_id: number | null;
  /** JSON array of the installation ids the user may see, computed at sign-in; `null`: all (operator). */
  installation_ids: string | null;
  /** JSON array of the `owner/repo` names the user may see (admin or push), computed at sign-in; `null`: all (operator). */
  repositories: string | null;
  /** The session's CSRF token, required on every request that is not a GET. */
  csrf_token: string;
  /** Operator sessions: SHA-256 (hex) of the DASHBOARD_TOKEN they were opened with (never the token); `null` for a GitHub user. */
  operator_token_sha256: string | null;
  /** Epoch ms. */
  created_at: number;
  /** Epoch ms after which the session is refused. */
  expires_at: number;
}

export type DashboardSession = Selectable<DashboardSessionsTable>;

/**
 * Repository memory (issue 14): what a writer asked the app to remember about a repository
 * (`/learn`). Full-text indexed: a generated `search` tsvector on PostgreSQL, the FTS5 table
 * `learnings_fts` on SQLite (neither is read through this interface; see `store/memory.ts`).
 */
export interface LearningsTable {
  id: Generated<number>;
  installation_id: number;
  /** `owner/repo`, lower case. */
  repository: string;
  /** The learning as the writer wrote it (untrusted: escaped whenever it enters a prompt or a reply). */
  text: string;
  /** The comment it came from (`html_url`). */
  source_url: string;
  /** Unique per repository: adding the same source twice (a retried job) adds nothing. */
  source_key: string;
  /** GitHub login of the writer who taught it. */
  author: string;
  /** Epoch ms. */
  created_at: number;
}

export type Learning = Selectable<LearningsTable>;

/**
 * A repository's scheduled work (orchestrator mode, issue 14): one row per repository and kind,
 * written when the app has read the repository's valid config; fired by the shared
 * `orchestrator-tick` periodic task (`pipeline/orchestrator.ts`).
 */
export interface RepositorySchedulesTable {
  id: Generated<number>;
  installation_id: number;
  /** `owner/repo`, lower case. */
  repository: string;
  owner: string;
  repo: string;
  kind: "standup";
  /** Five-field cron expression, in `timezone`. */
  cron: string;
  /** IANA time zone, e.g. `Europe/Berlin`. */
  timezone: string;
  /** Epoch ms of the next fire. */
  next_run_at: number;
  /** Epoch ms the last stand-up was written; `null` before the first. */
  last_run_at: number | null;
  /** The stand-up issue, once created. */
  standup_issue_number: number | null;
  /** Epoch ms the stand-up was turned off (config) or the app lost the repository; `null` while it fires. The row and its issue are kept. */
  disabled_at: number | null;
  /** Epoch ms. */
  created_at: number;
  /** Epoch ms. */
  updated_at: number;
}

export type RepositorySchedule = Selectable<RepositorySchedulesTable>;

export type FollowUpSourceKind = "todo" | "review_finding" | "flaky_check";
export type FollowUpStatus = "proposed" | "accepted" | "dismissed";

/** A follow-up issue the stand-up proposed (issue 14); nothing is opened without a writer's `/approve <n>`. */
export interface FollowUpProposalsTable {
  id: Generated<number>;
  /** The GitHub App installation the repository was in when proposed: part of every key. */
  installation_id: number;
  /** `owner/repo`, lower case. */
  repository: string;
  /** The proposal's number in the repository (`/approve <n>`), unique per repository. */
  number: number;
  /** What it is about (unique per repository): never proposed again, whatever became of it. */
  fingerprint: string;
  /** Title of the issue it would open (built from untrusted text: escaped when rendered). */
  title: string;
  /** Body of the issue it would open (Markdown the app wrote, quoting untrusted text escaped). */
  body: string;
  source_kind: FollowUpSourceKind;
  /** Where it was seen (a pull request, a review comment, a check run). */
  source_url: string;
  status: FollowUpStatus;
  /** The stand-up's date (`YYYY-MM-DD` in the schedule's time zone). */
  proposed_on: string;
  /** Login of the writer who approved or dismissed it. */
  decided_by: string | null;
  /** Epoch ms. */
  decided_at: number | null;
  /** The issue opened on approval. */
  issue_number: number | null;
  /** Epoch ms. */
  created_at: number;
}

export type FollowUpProposal = Selectable<FollowUpProposalsTable>;

/** A learning the app proposed in its reply to a person's review comment, waiting for a writer's 👍 on that reply. */
export interface LearningProposalsTable {
  id: Generated<number>;
  installation_id: number;
  /** `owner/repo`, lower case. */
  repository: string;
  pull_number: number;
  /** The app's reply comment (a pull request review comment) that carries the proposal. */
  comment_id: number;
  /** The proposed learning (the model's words: untrusted). */
  text: string;
  /** The reply's web address. */
  source_url: string;
  state: "pending" | "accepted" | "expired";
  /** Epoch ms. */
  created_at: number;
  settled_at: number | null;
  /** The learning it became (`accepted`). */
  learning_id: number | null;
}

export type LearningProposal = Selectable<LearningProposalsTable>;
