import { type Kysely, sql } from "kysely";

import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one. (Edited once, for
// PostgreSQL: the column types come from `columnTypes`, which gives SQLite the same schema.)

export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("budget_reservations")
    .addColumn("id", t.serial, t.id)
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("task_id", t.integer, (c) => c.notNull())
    .addColumn("job_id", t.integer)
    .addColumn("amount_usd", t.real, (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("settled_at", t.bigint)
    .addCheckConstraint("budget_reservations_amount_nonnegative", sql`amount_usd >= 0`)
    .addCheckConstraint("budget_reservations_status", sql`status in ('held', 'settled', 'released')`)
    .execute();
  await db.schema.createIndex("budget_reservations_status").on("budget_reservations").columns(["status"]).execute();
  await db.schema.createIndex("budget_reservations_task").on("budget_reservations").columns(["task_id"]).execute();

  await db.schema
    .createTable("budget_alerts")
    .addColumn("id", t.serial, t.id)
    .addColumn("scope", "text", (c) => c.notNull())
    .addColumn("scope_key", "text", (c) => c.notNull())
    .addColumn("period", "text", (c) => c.notNull())
    .addColumn("period_start", t.bigint, (c) => c.notNull())
    .addColumn("threshold", t.real, (c) => c.notNull())
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addUniqueConstraint("budget_alerts_once", ["scope", "scope_key", "period", "period_start", "threshold"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["budget_alerts", "budget_reservations"]) {
    await db.schema.dropTable(table).execute();
  }
}
