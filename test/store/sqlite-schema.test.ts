import { readFileSync } from "node:fs";
import path from "node:path";

import { sql } from "kysely";
import { expect, it } from "vitest";

import { migrateToLatest, openDatabase } from "../../src/store/db.js";

/**
 * The schema a fresh SQLite database got from the migrations before they were made
 * dialect-neutral (issue 11), dumped from `sqlite_master`. The migrations are frozen: making
 * them work on PostgreSQL must not change one character of what SQLite gets.
 */
const BEFORE = path.resolve(import.meta.dirname, "../fixtures/sqlite-schema.json");

it("a fresh SQLite database gets exactly the schema it got before the migrations became dialect-neutral", async () => {
  const db = openDatabase(":memory:");
  try {
    await migrateToLatest(db);
    const { rows } = await sql<{
      type: string;
      name: string;
      tbl_name: string;
      sql: string | null;
    }>`select type, name, tbl_name, sql from sqlite_master where name not like 'kysely_%' order by type, name`.execute(db);
    expect(rows).toEqual(JSON.parse(readFileSync(BEFORE, "utf8")));
    expect(rows.length).toBeGreaterThan(10);
  } finally {
    await db.destroy();
  }
});
