import type { Generated, Insertable, Selectable, Updateable } from "kysely";

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
  /** Which stage this job runs: `plan`, `code`, `review`, … */
  kind: string;
  task_id: number;
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
  stage: string;
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
}

/** One row per Messages API call. */
export interface LlmUsageTable {
  id: Generated<number>;
  created_at: number;
  installation_id: number;
  repository: string;
  subject_number: number | null;
  task_id: number | null;
  job_id: number | null;
  agent: string;
  model: string;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** USD, computed from the usage fields and the price table in force. */
  cost_usd: number;
  /** The API's `request-id` header. */
  request_id: string | null;
}

export interface Database {
  deliveries: DeliveriesTable;
  jobs: JobsTable;
  tasks: TasksTable;
  llm_usage: LlmUsageTable;
}

export type Job = Selectable<JobsTable>;
export type NewJob = Insertable<JobsTable>;
export type Task = Selectable<TasksTable>;
export type NewTask = Insertable<TasksTable>;
export type TaskUpdate = Updateable<TasksTable>;
export type LlmUsage = Selectable<LlmUsageTable>;
export type NewLlmUsage = Insertable<LlmUsageTable>;
