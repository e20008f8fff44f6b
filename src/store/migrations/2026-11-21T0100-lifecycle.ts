import type { Kysely } from "kysely";

import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one. (Edited once, for
// PostgreSQL: the column types come from `columnTypes`, which gives SQLite the same schema.)

export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("transitions")
    .addColumn("id", t.serial, t.id)
    .addColumn("task_id", t.integer, (c) => c.notNull().references("tasks.id"))
    .addColumn("from_state", "text")
    .addColumn("to_state", "text", (c) => c.notNull())
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("actor", "text", (c) => c.notNull())
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .execute();
  await db.schema.createIndex("transitions_task").on("transitions").columns(["task_id", "id"]).execute();

  // Lifecycle bookkeeping on the task.
  await db.schema
    .alterTable("tasks")
    .addColumn("rework_cycles", t.integer, (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.alterTable("tasks").addColumn("head_sha", "text").execute();
  await db.schema.alterTable("tasks").addColumn("reviewed_sha", "text").execute();
  await db.schema.alterTable("tasks").addColumn("tests_conclusion", "text").execute();
  await db.schema.alterTable("tasks").addColumn("blocked_reason", "text").execute();
  await db.schema.alterTable("tasks").addColumn("approved_by", "text").execute();
  await db.schema.alterTable("tasks").addColumn("started_at", t.bigint).execute();
  await db.schema.alterTable("tasks").addColumn("finished_at", t.bigint).execute();
  await db.schema.alterTable("tasks").addColumn("triggered_by_id", t.bigint).execute();
  await db.schema.alterTable("tasks").addColumn("plan_approved_by", "text").execute();

  // `/stop all` by an organisation owner: no new LLM calls for the installation until /retry.
  await db.schema
    .createTable("pauses")
    .addColumn("installation_id", t.bigint, (c) => c.primaryKey())
    .addColumn("paused_by", "text", (c) => c.notNull())
    .addColumn("paused_at", t.bigint, (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable("pauses").execute();
  await db.schema.dropTable("transitions").execute();
  for (const column of [
    "rework_cycles",
    "head_sha",
    "reviewed_sha",
    "tests_conclusion",
    "blocked_reason",
    "approved_by",
    "started_at",
    "finished_at",
    "triggered_by_id",
    "plan_approved_by",
  ]) {
    await db.schema.alterTable("tasks").dropColumn(column).execute();
  }
}
