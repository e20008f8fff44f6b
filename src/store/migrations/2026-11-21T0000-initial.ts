import { type Kysely, sql } from "kysely";

import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one. (Edited once, for
// PostgreSQL: the column types come from `columnTypes`, which gives SQLite the same schema.)

export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("deliveries")
    .addColumn("delivery_id", "text", (c) => c.primaryKey())
    .addColumn("event", "text", (c) => c.notNull())
    .addColumn("received_at", t.bigint, (c) => c.notNull())
    .execute();

  await db.schema
    .createTable("tasks")
    .addColumn("id", t.serial, t.id)
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("repo", "text", (c) => c.notNull())
    .addColumn("issue_number", t.integer, (c) => c.notNull())
    .addColumn("run", t.integer, (c) => c.notNull().defaultTo(1))
    .addColumn("stage", "text", (c) => c.notNull())
    .addColumn("triggered_by", "text", (c) => c.notNull())
    .addColumn("clone_url", "text", (c) => c.notNull())
    .addColumn("default_branch", "text", (c) => c.notNull())
    .addColumn("config", "text", (c) => c.notNull())
    .addColumn("tracking_comment_id", t.bigint)
    .addColumn("plan_comment_id", t.bigint)
    .addColumn("plan_url", "text")
    .addColumn("plan", "text")
    .addColumn("branch", "text")
    .addColumn("pr_number", t.integer)
    .addColumn("pr_url", "text")
    .addColumn("review_url", "text")
    .addColumn("review_verdict", "text")
    .addColumn("failure_reason", "text")
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("updated_at", t.bigint, (c) => c.notNull())
    .addUniqueConstraint("tasks_issue_unique", ["owner", "repo", "issue_number"])
    .execute();

  await db.schema
    .createTable("jobs")
    .addColumn("id", t.serial, t.id)
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("task_id", t.integer, (c) => c.notNull().references("tasks.id"))
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("lock_key", "text", (c) => c.notNull())
    .addColumn("dedupe_key", "text", (c) => c.notNull().unique())
    .addColumn("delivery_id", "text")
    .addColumn("payload", "text", (c) => c.notNull().defaultTo("{}"))
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("attempts", t.integer, (c) => c.notNull().defaultTo(0))
    .addColumn("max_attempts", t.integer, (c) => c.notNull())
    .addColumn("run_after", t.bigint, (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("lease_expires_at", t.bigint)
    .addColumn("last_error", "text")
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("updated_at", t.bigint, (c) => c.notNull())
    .addColumn("finished_at", t.bigint)
    .execute();
  await db.schema.createIndex("jobs_claimable").on("jobs").columns(["state", "run_after"]).execute();
  await db.schema.createIndex("jobs_lock_key").on("jobs").columns(["lock_key", "state"]).execute();

  await db.schema
    .createTable("llm_usage")
    .addColumn("id", t.serial, t.id)
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("subject_number", t.integer)
    .addColumn("task_id", t.integer)
    .addColumn("job_id", t.integer)
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("model", "text", (c) => c.notNull())
    .addColumn("input_tokens", t.integer, (c) => c.notNull())
    .addColumn("output_tokens", t.integer, (c) => c.notNull())
    .addColumn("cache_creation_input_tokens", t.integer, (c) => c.notNull())
    .addColumn("cache_read_input_tokens", t.integer, (c) => c.notNull())
    .addColumn("cost_usd", t.real, (c) => c.notNull())
    .addColumn("request_id", "text")
    .addCheckConstraint("llm_usage_cost_nonnegative", sql`cost_usd >= 0`)
    .execute();
  await db.schema.createIndex("llm_usage_task").on("llm_usage").columns(["task_id"]).execute();
  await db.schema.createIndex("llm_usage_time").on("llm_usage").columns(["created_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["llm_usage", "jobs", "tasks", "deliveries"]) {
    await db.schema.dropTable(table).execute();
  }
}
