import { readFileSync } from "node:fs";
import path from "node:path";

import { type Kysely, Migrator, sql } from "kysely";
import { expect, it } from "vitest";

import { type Db, openDatabase } from "../../src/store/db.js";
import { migrations } from "../../src/store/migrations/index.js";

/**
 * The schema a fresh SQLite database got from the migrations before they were made
 * dialect-neutral (issue 11), dumped from `sqlite_master`. The migrations are frozen: making
 * them work on PostgreSQL must not change one character of what SQLite gets. Migrations added
 * since change the schema on purpose: the database is migrated up to the last one before them.
 */
const BEFORE = path.resolve(import.meta.dirname, "../fixtures/sqlite-schema.json");

/** The first migration that changes the SQLite schema after the fixture was taken. */
const NANO_USD = "2026-11-28T0000-nano-usd";
const BEFORE_NANO_USD = Object.keys(migrations)
  .sort()
  .filter((name) => name < NANO_USD)
  .at(-1)!;

interface SchemaRow {
  type: string;
  name: string;
  tbl_name: string;
  sql: string | null;
}

async function schemaOf(db: Db): Promise<SchemaRow[]> {
  const { rows } = await sql<SchemaRow>`select type, name, tbl_name, sql from sqlite_master where name not like 'kysely_%' order by type, name`.execute(db);
  return rows;
}

async function migrateTo(db: Db, name: string): Promise<void> {
  const { error } = await new Migrator({ db: db as Kysely<unknown>, provider: { getMigrations: () => Promise.resolve(migrations) } }).migrateTo(name);
  if (error) throw error instanceof Error ? error : new Error("migration failed", { cause: error });
}

const fixture = (): SchemaRow[] => JSON.parse(readFileSync(BEFORE, "utf8")) as SchemaRow[];
const MONEY_TABLES = new Set(["llm_usage", "budget_reservations"]);

it("a fresh SQLite database gets exactly the schema it got before the migrations became dialect-neutral", async () => {
  const db = openDatabase(":memory:");
  try {
    await migrateTo(db, BEFORE_NANO_USD);
    const rows = await schemaOf(db);
    expect(rows).toEqual(fixture());
    expect(rows.length).toBeGreaterThan(10);
  } finally {
    await db.destroy();
  }
});

it("the nano-dollar migration changes only the two money tables: integer columns with CHECKs, the same indexes; down restores the old schema exactly", async () => {
  const db = openDatabase(":memory:");
  try {
    // Up to the nano-dollar migration: the tables of later migrations are not part of this comparison.
    await migrateTo(db, NANO_USD);
    const rows = await schemaOf(db);
    const others = (list: SchemaRow[]) => list.filter((r) => !MONEY_TABLES.has(r.tbl_name));
    expect(others(rows)).toEqual(others(fixture()));
    const sqlOf = (name: string) => rows.find((r) => r.name === name)?.sql;
    expect(sqlOf("llm_usage")).toBe(
      'CREATE TABLE "llm_usage" ("id" integer primary key autoincrement, "created_at" integer not null, "installation_id" integer not null, "repository" text not null, "subject_number" integer, "task_id" integer, "job_id" integer, "agent" text not null, "model" text not null, "input_tokens" integer not null, "output_tokens" integer not null, "cache_creation_input_tokens" integer not null, "cache_read_input_tokens" integer not null, "cost_nano_usd" integer not null, "request_id" text, ' +
        `constraint "llm_usage_cost_nano_usd_nonnegative" check (cost_nano_usd >= 0), constraint "llm_usage_cost_nano_usd_integer" check (typeof(cost_nano_usd) = 'integer'))`,
    );
    expect(sqlOf("budget_reservations")).toBe(
      'CREATE TABLE "budget_reservations" ("id" integer primary key autoincrement, "created_at" integer not null, "installation_id" integer not null, "repository" text not null, "agent" text not null, "task_id" integer not null, "job_id" integer, "amount_nano_usd" integer not null, "status" text not null, "settled_at" integer, ' +
        `constraint "budget_reservations_amount_nano_usd_nonnegative" check (amount_nano_usd >= 0), constraint "budget_reservations_amount_nano_usd_integer" check (typeof(amount_nano_usd) = 'integer'), constraint "budget_reservations_status" check (status in ('held', 'settled', 'released')))`,
    );
    // Same indexes as before.
    const indexes = (list: SchemaRow[]) => list.filter((r) => MONEY_TABLES.has(r.tbl_name) && r.type === "index");
    expect(indexes(rows)).toEqual(indexes(fixture()));

    await migrateTo(db, BEFORE_NANO_USD);
    expect(await schemaOf(db)).toEqual(fixture());
  } finally {
    await db.destroy();
  }
});
