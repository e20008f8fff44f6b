import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { CopyRefusedError, copySqliteToPostgres, type CopyResult, openSqliteSource } from "../../src/store/copy-to-postgres.js";
import { type Db, migrateToLatest } from "../../src/store/db.js";
import { openPostgres } from "../../src/store/postgres.js";
import { createTask } from "../../src/store/tasks.js";
import { transition } from "../../src/store/transitions.js";
import { createTestDatabase, type TestDatabase } from "../helpers/db.js";
import { queueLiveJob, seedInstallation, T0 } from "../helpers/sqlite-installation.js";
import { createPostgresDatabase, postgresAdminUrl, type PostgresTestDatabase } from "../helpers/store-backends.js";

const adminUrl = postgresAdminUrl();

/** Every table the copy must carry over (the job queue is not one of them). */
const DURABLE_TABLES = [
  "budget_alerts",
  "budget_reservations",
  "deliveries",
  "follow_up_proposals",
  "learning_proposals",
  "learnings",
  "llm_usage",
  "pauses",
  "repository_schedules",
  "tasks",
  "transitions",
];

type Row = Record<string, unknown>;

/** The SQLite file's tables, but the job queue and kysely's bookkeeping. */
async function sqliteTables(db: Db): Promise<string[]> {
  const rows = await sql<{ name: string }>`select name from sqlite_master where type = 'table' order by name`.execute(db);
  // `learnings_fts*`: repository memory's FTS5 index (a virtual table and its shadow tables), which is not data.
  return rows.rows
    .map((r) => r.name)
    .filter((n) => !n.startsWith("sqlite_") && !n.startsWith("kysely_") && n !== "jobs" && n !== "dashboard_sessions" && !n.startsWith("learnings_fts"));
}

/** Rows sorted by their JSON text, so that the two databases' rows line up without knowing their keys. */
function sorted(rows: Row[]): Row[] {
  return [...rows].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}

/**
 * The SQLite rows of `table` as PostgreSQL should hold them. The only difference allowed: a
 * SQLite integer in a column that is text on PostgreSQL (job ids) reads back as its text.
 */
async function expectedRows(sqlite: Db, pg: Db, table: string): Promise<Row[]> {
  const types = await sql<{ column_name: string; data_type: string }>`
    select column_name, data_type from information_schema.columns where table_schema = current_schema() and table_name = ${table}`.execute(pg);
  const textColumns = new Set(types.rows.filter((r) => r.data_type === "text").map((r) => r.column_name));
  const rows = (await sql<Row>`select * from ${sql.id(table)}`.execute(sqlite)).rows;
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, textColumns.has(k) && typeof v === "number" ? String(v) : v])));
}

/** A PostgreSQL table's rows, without its generated columns (e.g. the `tsvector` PostgreSQL computes for learnings). */
async function pgRows(pg: Db, table: string): Promise<Row[]> {
  const columns = await sql<{ column_name: string }>`
    select column_name from information_schema.columns
     where table_schema = current_schema() and table_name = ${table} and is_generated = 'NEVER' order by ordinal_position`.execute(pg);
  if (columns.rows.length === 0) return [];
  const list = sql.join(columns.rows.map((c) => sql.id(c.column_name)));
  return (await sql<Row>`select ${list} from ${sql.id(table)}`.execute(pg)).rows;
}

/** Every copied table of PostgreSQL, row by row, plus where its sequences stand. */
async function pgSnapshot(pg: Db): Promise<Record<string, unknown>> {
  const snapshot: Record<string, unknown> = {};
  for (const table of DURABLE_TABLES) snapshot[table] = sorted(await pgRows(pg, table));
  snapshot.sequences = (await sql<Row>`select sequencename, last_value from pg_sequences where schemaname = current_schema() order by 1`.execute(pg)).rows;
  return snapshot;
}

function counts(result: CopyResult): Record<string, { read: number; inserted: number; skipped: number; differing: number }> {
  return Object.fromEntries(result.tables.map((t) => [t.table, { read: t.read, inserted: t.inserted, skipped: t.skipped, differing: t.differing }]));
}

async function pgTableNames(pg: Db): Promise<string[]> {
  const rows = await sql<{ table_name: string }>`select table_name from information_schema.tables where table_schema = current_schema()`.execute(pg);
  return rows.rows.map((r) => r.table_name);
}

// Skipped with the one line printed by test/global-setup.ts when PostgreSQL did not answer.
(adminUrl === null ? describe.skip : describe)("copySqliteToPostgres", () => {
  let sqlite: TestDatabase;
  let database: PostgresTestDatabase;
  let pg: Db;

  beforeEach(async () => {
    sqlite = await createTestDatabase();
    database = await createPostgresDatabase(adminUrl ?? "");
    pg = openPostgres(database.url, { maxConnections: 2 });
  });

  afterEach(async () => {
    await pg.destroy();
    await database.drop();
    await sqlite.cleanup();
  });

  it("copies every durable table row by row, keeping ids, and a second run inserts and changes nothing", async () => {
    const { taskIds } = await seedInstallation(sqlite.db);
    expect(await sqliteTables(sqlite.db)).toEqual(DURABLE_TABLES);

    // Two rows per statement: every table takes several batches (keyset pagination on SQLite's rowid).
    const first = await copySqliteToPostgres(sqlite.db, pg, { batchSize: 2 });

    // Parents before the tables whose foreign keys reference them.
    const order = first.tables.map((t) => t.table);
    expect([...order].sort()).toEqual(DURABLE_TABLES);
    expect(order.indexOf("tasks")).toBeLessThan(order.indexOf("transitions"));
    for (const table of DURABLE_TABLES) {
      const expected = await expectedRows(sqlite.db, pg, table);
      expect(expected.length, table).toBeGreaterThan(0);
      expect(sorted(await pgRows(pg, table)), table).toEqual(sorted(expected));
      expect(counts(first)[table], table).toEqual({ read: expected.length, inserted: expected.length, skipped: 0, differing: 0 });
    }
    expect(first.tables.every((t) => t.sourceOnlyColumns.length === 0)).toBe(true);
    expect(first.jobsNotCopied).toEqual({ live: 0, finished: 3 });
    expect(await pgRows(pg, "jobs")).toEqual([]);
    expect((await pgRows(pg, "tasks")).map((t) => t.id).sort()).toEqual([...taskIds].sort());

    const before = await pgSnapshot(pg);
    const second = await copySqliteToPostgres(sqlite.db, pg, { batchSize: 2 });
    for (const t of second.tables)
      expect({ table: t.table, inserted: t.inserted, skipped: t.skipped, differing: t.differing }).toEqual({
        table: t.table,
        inserted: 0,
        skipped: t.read,
        differing: 0,
      });
    expect(await pgSnapshot(pg)).toEqual(before);
  });

  it("moves the sequences past the copied ids: rows written on PostgreSQL afterwards get new ids", async () => {
    await seedInstallation(sqlite.db);
    await copySqliteToPostgres(sqlite.db, pg);

    const maxTaskId = Math.max(...(await pgRows(pg, "tasks")).map((t) => Number(t.id)));
    const maxTransitionId = Math.max(...(await pgRows(pg, "transitions")).map((t) => Number(t.id)));
    const task = await createTask(pg, {
      installation_id: 987_654_321,
      owner: "octo-org",
      repo: "widgets",
      issue_number: 99,
      run: 1,
      stage: "new",
      triggered_by: "octocat",
      clone_url: "https://github.com/octo-org/widgets.git",
      default_branch: "main",
      config: "{}",
      created_at: T0,
      updated_at: T0,
    });
    expect(task.id).toBe(maxTaskId + 1);
    await transition(pg, task.id, "planning", { reason: "label", actor: "octocat" });
    expect(Math.max(...(await pgRows(pg, "transitions")).map((t) => Number(t.id)))).toBe(maxTransitionId + 1);

    // Every serial column of every copied table: the next value is above the largest copied one.
    const serials = await sql<{ table_name: string; column_name: string; seq: string }>`
      select table_name, column_name, pg_get_serial_sequence(format('%I.%I', table_schema, table_name), column_name) as seq
        from information_schema.columns
       where table_schema = current_schema() and pg_get_serial_sequence(format('%I.%I', table_schema, table_name), column_name) is not null`.execute(pg);
    const copied = serials.rows.filter((r) => DURABLE_TABLES.includes(r.table_name));
    expect(copied.map((r) => r.table_name).sort()).toEqual([
      "budget_alerts",
      "budget_reservations",
      "follow_up_proposals",
      "learning_proposals",
      "learnings",
      "llm_usage",
      "repository_schedules",
      "tasks",
      "transitions",
    ]);
    for (const { table_name, column_name, seq } of copied) {
      const max = await sql<{ max: number }>`select max(${sql.id(column_name)}) as max from ${sql.id(table_name)}`.execute(pg);
      const next = await sql<{ next: number }>`select nextval(${seq}::regclass) as next`.execute(pg);
      expect(Number(next.rows[0]?.next), table_name).toBeGreaterThan(Number(max.rows[0]?.max));
    }

    // A later copy does not move them back, and still inserts nothing.
    const again = await copySqliteToPostgres(sqlite.db, pg);
    expect(again.tables.reduce((sum, t) => sum + t.inserted, 0)).toBe(0);
    const next = await createTask(pg, { ...task, id: undefined, issue_number: 100 });
    expect(next.id).toBeGreaterThan(task.id);
  });

  it("reports rows that changed in SQLite after a first copy as differing, and keeps PostgreSQL's", async () => {
    const { taskIds } = await seedInstallation(sqlite.db);
    await copySqliteToPostgres(sqlite.db, pg);
    const taskId = taskIds[0] ?? 0;
    await sql`update tasks set pr_number = 41 where id = ${taskId}`.execute(sqlite.db);

    const result = await copySqliteToPostgres(sqlite.db, pg);
    expect(counts(result).tasks).toEqual({ read: 3, inserted: 0, skipped: 3, differing: 1 });
    const row = (await pgRows(pg, "tasks")).find((t) => t.id === taskId);
    expect(row?.pr_number).toBe(40);
  });

  it("copies a table it was never told about after the table its foreign key references, with the columns both sides have", async () => {
    // A later migration's table, named to sort before `tasks`: only the foreign key puts it after.
    const { taskIds } = await seedInstallation(sqlite.db);
    await sql`create table a_task_notes (id integer primary key autoincrement, task_id integer not null references tasks(id), note text not null, legacy_flag integer)`.execute(
      sqlite.db,
    );
    for (const [i, taskId] of taskIds.entries())
      await sql`insert into a_task_notes (task_id, note, legacy_flag) values (${taskId}, ${`note ${i}`}, 1)`.execute(sqlite.db);
    await migrateToLatest(pg);
    await sql`create table a_task_notes (id serial primary key, task_id integer not null references tasks(id), note text not null)`.execute(pg);

    const result = await copySqliteToPostgres(sqlite.db, pg);
    const order = result.tables.map((t) => t.table);
    expect(order.indexOf("a_task_notes")).toBeGreaterThan(order.indexOf("tasks"));
    expect(result.tables.find((t) => t.table === "a_task_notes")).toEqual({
      table: "a_task_notes",
      read: 3,
      inserted: 3,
      skipped: 0,
      differing: 0,
      sourceOnlyColumns: ["legacy_flag"],
    });
    expect(sorted(await pgRows(pg, "a_task_notes"))).toEqual(sorted(taskIds.map((taskId, i) => ({ id: i + 1, task_id: taskId, note: `note ${i}` }))));
  });

  it("is all or nothing: a row PostgreSQL rejects rolls back every table", async () => {
    await seedInstallation(sqlite.db);
    await migrateToLatest(pg);
    // A constraint only PostgreSQL has rejects one transition, after tasks (and others) were inserted.
    await sql`alter table transitions add constraint no_hubot check (actor <> 'hubot')`.execute(pg);

    await expect(copySqliteToPostgres(sqlite.db, pg)).rejects.toThrow(/no_hubot/);
    for (const table of DURABLE_TABLES) expect(await pgRows(pg, table), table).toEqual([]);
  });

  it("refuses while jobs are queued or running, writing nothing to PostgreSQL; --skip-live-jobs copies without them", async () => {
    const { taskIds } = await seedInstallation(sqlite.db);
    await queueLiveJob(sqlite.db, taskIds[0] ?? 0);
    await queueLiveJob(sqlite.db, taskIds[1] ?? 0);
    await sql`update jobs set state = 'running', lease_owner = 'worker-1', lease_expires_at = ${T0 + 60_000} where dedupe_key like 'code:%' and task_id = ${taskIds[1] ?? 0}`.execute(
      sqlite.db,
    );

    const refused = await copySqliteToPostgres(sqlite.db, pg).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(CopyRefusedError);
    expect(refused).toMatchObject({ reason: "live_jobs", liveJobs: 2, code: "copy_refused_live_jobs" });
    expect((refused as Error).message).toBe(
      "2 job(s) are queued or running in the SQLite file and would be lost: stop the app, let it finish, or pass --skip-live-jobs",
    );
    expect(await pgTableNames(pg)).toEqual([]);

    const result = await copySqliteToPostgres(sqlite.db, pg, { skipLiveJobs: true });
    expect(result.jobsNotCopied).toEqual({ live: 2, finished: 3 });
    expect(counts(result).tasks?.inserted).toBe(3);
    expect(await pgRows(pg, "jobs")).toEqual([]);
  });

  it("refuses an SQLite file that is behind this version's migrations, or has none", async () => {
    await seedInstallation(sqlite.db);
    const last = await sql<{ name: string }>`select name from kysely_migration order by name desc limit 1`.execute(sqlite.db);
    await sql`delete from kysely_migration where name = ${last.rows[0]?.name ?? ""}`.execute(sqlite.db);
    const behind = await copySqliteToPostgres(sqlite.db, pg).catch((err: unknown) => err);
    expect(behind).toMatchObject({ reason: "source_not_migrated" });
    expect((behind as Error).message).toMatch(/1 migration\(s\) behind .*start this version of Mission Control once on the SQLite file/);

    await sql`insert into kysely_migration (name, timestamp) values ('2999-01-01T0000-from-the-future', '2999-01-01')`.execute(sqlite.db);
    await expect(copySqliteToPostgres(sqlite.db, pg)).rejects.toMatchObject({ reason: "source_newer" });
    expect(await pgTableNames(pg)).toEqual([]);

    const dir = await mkdtemp(path.join(tmpdir(), "mc-copy-"));
    try {
      const empty = path.join(dir, "empty.sqlite");
      await writeFile(empty, "");
      const db = openSqliteSource(empty);
      try {
        await expect(copySqliteToPostgres(db, pg)).rejects.toMatchObject({
          reason: "source_not_migrated",
          message: expect.stringMatching(/no migrations recorded/),
        });
      } finally {
        await db.destroy();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("openSqliteSource", () => {
  it("refuses a missing file without creating it (or its folder)", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mc-copy-"));
    try {
      const missing = path.join(dir, "nowhere", "mission-control.sqlite");
      expect(() => openSqliteSource(missing)).toThrow(CopyRefusedError);
      expect(() => openSqliteSource(missing)).toThrow(`no SQLite file at ${missing} (nothing was created)`);
      expect(existsSync(path.dirname(missing))).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("refuses a file that is not an SQLite database, and a folder", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "mc-copy-"));
    try {
      const notDb = path.join(dir, "notes.txt");
      await writeFile(notDb, "this is not a database, just some text that is long enough to have a header".repeat(10));
      expect(() => openSqliteSource(notDb)).toThrow(/cannot be opened as an SQLite database/);
      expect(() => openSqliteSource(dir)).toThrow(/is not a file/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
