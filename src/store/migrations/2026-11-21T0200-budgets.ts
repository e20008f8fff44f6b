import { type Kysely, sql } from "kysely";

// Frozen in time: never edit a migration that has shipped; add a new one.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable("budget_reservations")
    .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("created_at", "integer", (c) => c.notNull())
    .addColumn("installation_id", "integer", (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("task_id", "integer", (c) => c.notNull())
    .addColumn("job_id", "integer")
    .addColumn("amount_usd", "real", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("settled_at", "integer")
    .addCheckConstraint("budget_reservations_amount_nonnegative", sql`amount_usd >= 0`)
    .addCheckConstraint("budget_reservations_status", sql`status in ('held', 'settled', 'released')`)
    .execute();
  await db.schema.createIndex("budget_reservations_status").on("budget_reservations").columns(["status"]).execute();
  await db.schema.createIndex("budget_reservations_task").on("budget_reservations").columns(["task_id"]).execute();

  await db.schema
    .createTable("budget_alerts")
    .addColumn("id", "integer", (c) => c.primaryKey().autoIncrement())
    .addColumn("scope", "text", (c) => c.notNull())
    .addColumn("scope_key", "text", (c) => c.notNull())
    .addColumn("period", "text", (c) => c.notNull())
    .addColumn("period_start", "integer", (c) => c.notNull())
    .addColumn("threshold", "real", (c) => c.notNull())
    .addColumn("created_at", "integer", (c) => c.notNull())
    .addUniqueConstraint("budget_alerts_once", ["scope", "scope_key", "period", "period_start", "threshold"])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["budget_alerts", "budget_reservations"]) {
    await db.schema.dropTable(table).execute();
  }
}
