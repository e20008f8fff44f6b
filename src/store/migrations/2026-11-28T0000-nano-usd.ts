import { type Kysely, sql } from "kysely";

import { isPostgres } from "../dialect.js";
import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * Money becomes exact: `llm_usage.cost_usd` and `budget_reservations.amount_usd` (REAL /
 * double precision USD, whose sums drift) are replaced by `cost_nano_usd` and
 * `amount_nano_usd`, integer nano-dollars (1 USD = 10⁹ n$; `bigint` on PostgreSQL, `integer` on
 * SQLite, which is 64-bit). Existing rows are backfilled with the float amount × 10⁹ rounded to
 * the nearest n$ (every amount the app wrote was a whole number of n$ up to float error: its
 * prices have at most 3 decimals per million tokens). The float columns are dropped, so nothing
 * can keep reading or writing them.
 *
 * PostgreSQL: add the column, backfill (through `numeric`, so that rounding is decimal and
 * half-up), set NOT NULL, add the CHECK, drop the float column (its CHECK goes with it).
 *
 * SQLite cannot drop a column named in a table CHECK constraint (`llm_usage_cost_nonnegative`,
 * `budget_reservations_amount_nonnegative`) and cannot add a NOT NULL column without a default,
 * so each table is rebuilt the way `2026-11-27T0000-intake-jobs` rebuilt `jobs`: create the new
 * table, copy every row (same ids) computing the new column, drop the old table, rename, recreate
 * the indexes. This runs in the migration's transaction; no other table references these two.
 * The new columns also get `CHECK (typeof(…) = 'integer')` on SQLite: its INTEGER affinity
 * would otherwise store a fractional value as REAL and let a float back in.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) {
    await replaceColumnOnPostgres(db, {
      table: "llm_usage",
      drop: "cost_usd",
      add: "cost_nano_usd",
      type: "bigint",
      backfill: sql`round(cost_usd::numeric * 1000000000)`,
      check: { name: "llm_usage_cost_nano_usd_nonnegative", expression: sql`cost_nano_usd >= 0` },
    });
    await replaceColumnOnPostgres(db, {
      table: "budget_reservations",
      drop: "amount_usd",
      add: "amount_nano_usd",
      type: "bigint",
      backfill: sql`round(amount_usd::numeric * 1000000000)`,
      check: { name: "budget_reservations_amount_nano_usd_nonnegative", expression: sql`amount_nano_usd >= 0` },
    });
    return;
  }
  await rebuildLlmUsage(db, "nano", sql`cast(round(cost_usd * 1000000000) as integer)`);
  await rebuildBudgetReservations(db, "nano", sql`cast(round(amount_usd * 1000000000) as integer)`);
}

/** Back to float USD (n$ / 10⁹), the schema of the earlier migrations. */
export async function down(db: Kysely<any>): Promise<void> {
  if (isPostgres(db)) {
    await replaceColumnOnPostgres(db, {
      table: "llm_usage",
      drop: "cost_nano_usd",
      add: "cost_usd",
      type: "double precision",
      backfill: sql`cost_nano_usd / 1000000000.0`,
      check: { name: "llm_usage_cost_nonnegative", expression: sql`cost_usd >= 0` },
    });
    await replaceColumnOnPostgres(db, {
      table: "budget_reservations",
      drop: "amount_nano_usd",
      add: "amount_usd",
      type: "double precision",
      backfill: sql`amount_nano_usd / 1000000000.0`,
      check: { name: "budget_reservations_amount_nonnegative", expression: sql`amount_usd >= 0` },
    });
    return;
  }
  await rebuildLlmUsage(db, "float", sql`cost_nano_usd / 1000000000.0`);
  await rebuildBudgetReservations(db, "float", sql`amount_nano_usd / 1000000000.0`);
}

interface ColumnSwap {
  table: string;
  drop: string;
  add: string;
  type: "bigint" | "double precision";
  /** The new column's value, computed from the old one. */
  backfill: ReturnType<typeof sql>;
  check: { name: string; expression: ReturnType<typeof sql> };
}

async function replaceColumnOnPostgres(db: Kysely<any>, swap: ColumnSwap): Promise<void> {
  await db.schema.alterTable(swap.table).addColumn(swap.add, swap.type).execute();
  await sql`update ${sql.table(swap.table)} set ${sql.ref(swap.add)} = ${swap.backfill}`.execute(db);
  await db.schema
    .alterTable(swap.table)
    .alterColumn(swap.add, (c) => c.setNotNull())
    .execute();
  await db.schema.alterTable(swap.table).addCheckConstraint(swap.check.name, swap.check.expression).execute();
  await db.schema.alterTable(swap.table).dropColumn(swap.drop).execute();
}

/** `nano`: this migration's integer column; `float`: the REAL column of `2026-11-21T0000-initial`. */
type Money = "nano" | "float";

/** SQLite: rebuilds `llm_usage` with the money column of `money`, computed by `value` from the old row. */
async function rebuildLlmUsage(db: Kysely<any>, money: Money, value: ReturnType<typeof sql>): Promise<void> {
  const t = columnTypes(db);
  const column = money === "nano" ? "cost_nano_usd" : "cost_usd";
  let table = db.schema
    .createTable("llm_usage_next")
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
    .addColumn(column, money === "nano" ? t.bigint : t.real, (c) => c.notNull())
    .addColumn("request_id", "text");
  table =
    money === "nano"
      ? table
          .addCheckConstraint("llm_usage_cost_nano_usd_nonnegative", sql`cost_nano_usd >= 0`)
          .addCheckConstraint("llm_usage_cost_nano_usd_integer", sql`typeof(cost_nano_usd) = 'integer'`)
      : table.addCheckConstraint("llm_usage_cost_nonnegative", sql`cost_usd >= 0`);
  await table.execute();
  await sql`insert into llm_usage_next (id, created_at, installation_id, repository, subject_number, task_id, job_id, agent, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, ${sql.ref(column)}, request_id)
    select id, created_at, installation_id, repository, subject_number, task_id, job_id, agent, model, input_tokens, output_tokens, cache_creation_input_tokens, cache_read_input_tokens, ${value}, request_id from llm_usage`.execute(
    db,
  );
  await db.schema.dropTable("llm_usage").execute();
  await sql`alter table llm_usage_next rename to llm_usage`.execute(db);
  await db.schema.createIndex("llm_usage_task").on("llm_usage").columns(["task_id"]).execute();
  await db.schema.createIndex("llm_usage_time").on("llm_usage").columns(["created_at"]).execute();
}

/** SQLite: rebuilds `budget_reservations` with the money column of `money`, computed by `value` from the old row. */
async function rebuildBudgetReservations(db: Kysely<any>, money: Money, value: ReturnType<typeof sql>): Promise<void> {
  const t = columnTypes(db);
  const column = money === "nano" ? "amount_nano_usd" : "amount_usd";
  let table = db.schema
    .createTable("budget_reservations_next")
    .addColumn("id", t.serial, t.id)
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("agent", "text", (c) => c.notNull())
    .addColumn("task_id", t.integer, (c) => c.notNull())
    .addColumn("job_id", t.integer)
    .addColumn(column, money === "nano" ? t.bigint : t.real, (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("settled_at", t.bigint);
  table =
    money === "nano"
      ? table
          .addCheckConstraint("budget_reservations_amount_nano_usd_nonnegative", sql`amount_nano_usd >= 0`)
          .addCheckConstraint("budget_reservations_amount_nano_usd_integer", sql`typeof(amount_nano_usd) = 'integer'`)
      : table.addCheckConstraint("budget_reservations_amount_nonnegative", sql`amount_usd >= 0`);
  await table.addCheckConstraint("budget_reservations_status", sql`status in ('held', 'settled', 'released')`).execute();
  await sql`insert into budget_reservations_next (id, created_at, installation_id, repository, agent, task_id, job_id, ${sql.ref(column)}, status, settled_at)
    select id, created_at, installation_id, repository, agent, task_id, job_id, ${value}, status, settled_at from budget_reservations`.execute(db);
  await db.schema.dropTable("budget_reservations").execute();
  await sql`alter table budget_reservations_next rename to budget_reservations`.execute(db);
  await db.schema.createIndex("budget_reservations_status").on("budget_reservations").columns(["status"]).execute();
  await db.schema.createIndex("budget_reservations_task").on("budget_reservations").columns(["task_id"]).execute();
}
