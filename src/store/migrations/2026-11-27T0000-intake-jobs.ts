import { type Kysely, sql } from "kysely";

import { isPostgres } from "../dialect.js";
import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one. (Edited once, for
// PostgreSQL: the column types come from `columnTypes`, which gives SQLite the same schema.)

/**
 * `jobs.task_id` becomes nullable: an `intake` job is enqueued by a webhook handler before it is
 * known whether the delivery starts work (the sender's permission and the repository config are
 * read by the worker), so it has no task yet. SQLite cannot drop a NOT NULL constraint: the
 * table is rebuilt with the same columns, constraints and indexes. PostgreSQL can.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) {
    await db.schema
      .alterTable("jobs")
      .alterColumn("task_id", (c) => c.dropNotNull())
      .execute();
    return;
  }
  const t = columnTypes(db);
  await db.schema
    .createTable("jobs_next")
    .addColumn("id", t.serial, t.id)
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("task_id", t.integer, (c) => c.references("tasks.id"))
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
  await sql`insert into jobs_next select id, kind, task_id, installation_id, lock_key, dedupe_key, delivery_id, payload, state, attempts, max_attempts, run_after, lease_owner, lease_expires_at, last_error, created_at, updated_at, finished_at from jobs`.execute(
    db,
  );
  await db.schema.dropTable("jobs").execute();
  await sql`alter table jobs_next rename to jobs`.execute(db);
  await db.schema.createIndex("jobs_claimable").on("jobs").columns(["state", "run_after"]).execute();
  await db.schema.createIndex("jobs_lock_key").on("jobs").columns(["lock_key", "state"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`delete from jobs where task_id is null`.execute(db);
}
