import { statSync } from "node:fs";

import { type RawBuilder, sql } from "kysely";

import { MissionControlError } from "../domain/errors.js";
import { type Db, openDatabase } from "./db.js";
import { isPostgres } from "./dialect.js";
import { migrateToLatest } from "./migrate.js";
import { migrations } from "./migrations/index.js";

// Moving an SQLite installation to PostgreSQL (`mission-control migrate-sqlite-to-postgres`).
// Generic on purpose: the tables and columns are read from both databases (SQLite's
// `pragma_table_info`, PostgreSQL's information_schema), so the copy follows whatever the
// migrations define — a column added or renamed by a later migration needs no change here.

/**
 * Tables never copied: the job queue (on PostgreSQL the queue is pg-boss), kysely's migration
 * bookkeeping, and the dashboard's sign-in sessions (short-lived: people sign in again).
 */
const NOT_COPIED: ReadonlySet<string> = new Set(["jobs", "kysely_migration", "kysely_migration_lock", "dashboard_sessions"]);

/** Job states that mean "not finished": such a job would be lost by the move. */
const LIVE_JOB_STATES = ["queued", "running"] as const;

/** Rows read from SQLite and inserted into PostgreSQL per statement (fewer for wide tables). */
const DEFAULT_BATCH_SIZE = 500;

/** PostgreSQL allows 65 535 parameters per statement; stay well below. */
const MAX_PARAMETERS = 30_000;

/** Why a copy was refused before anything was written to PostgreSQL. */
export type CopyRefusal = "source_missing" | "source_unreadable" | "source_not_migrated" | "source_newer" | "live_jobs" | "schema_mismatch";

/** The copy was refused; nothing was written to PostgreSQL (its migrations may have run). The message tells the operator what to do. */
export class CopyRefusedError extends MissionControlError {
  readonly reason: CopyRefusal;
  /** Queued or running jobs found in the SQLite file (reason `live_jobs`), else 0. */
  readonly liveJobs: number;

  constructor(reason: CopyRefusal, message: string, liveJobs = 0) {
    super(`copy_refused_${reason}`, message);
    this.reason = reason;
    this.liveJobs = liveJobs;
  }
}

/** Options of {@link copySqliteToPostgres}. */
export interface CopyOptions {
  /**
   * Copy even though jobs are queued or running in the SQLite file. Those jobs are not copied
   * (nor is any other job); their number is reported. Default: refuse ({@link CopyRefusedError}).
   */
  skipLiveJobs?: boolean;
  /** Rows per INSERT (default 500; fewer for tables with many columns). */
  batchSize?: number;
}

/** What happened to one table. */
export interface TableCopyResult {
  table: string;
  /** Rows in the SQLite table. */
  read: number;
  /** Rows this run inserted into PostgreSQL. */
  inserted: number;
  /** Rows PostgreSQL already had (same primary key or another unique key): left as they are. `read = inserted + skipped`. */
  skipped: number;
  /**
   * Of the skipped rows, those whose PostgreSQL row (by primary key) differs from the SQLite row,
   * or that collided on another unique key: the PostgreSQL row was kept. 0 when re-running a copy
   * of an SQLite file that did not change since.
   */
  differing: number;
  /** Columns of the SQLite table that PostgreSQL does not have: their values were not copied. Normally empty. */
  sourceOnlyColumns: string[];
}

/** What {@link copySqliteToPostgres} did. */
export interface CopyResult {
  /** One entry per table, in the order they were copied (parents before the tables that reference them). */
  tables: TableCopyResult[];
  /** Rows of the SQLite job queue, which is never copied. */
  jobsNotCopied: {
    /** Queued or running (only with `skipLiveJobs`; otherwise the copy is refused). */
    live: number;
    /** Succeeded, failed or cancelled: the queue's history. */
    finished: number;
  };
}

/**
 * Opens the SQLite file of an installation to copy it, without ever creating one: a path that
 * does not exist is refused (`openDatabase` would create an empty database there).
 *
 * @throws {CopyRefusedError} `source_missing` when there is no file at `filePath`, `source_unreadable` when it is not an SQLite database
 */
export function openSqliteSource(filePath: string): Db {
  let isFile: boolean;
  try {
    isFile = statSync(filePath).isFile();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new CopyRefusedError("source_missing", `no SQLite file at ${filePath} (nothing was created)`);
    throw err;
  }
  if (!isFile) throw new CopyRefusedError("source_unreadable", `${filePath} is not a file`);
  try {
    return openDatabase(filePath);
  } catch (err) {
    throw new CopyRefusedError("source_unreadable", `${filePath} cannot be opened as an SQLite database: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/**
 * Answers when PostgreSQL does: `select 1`, rethrowing the driver's error (refused connection,
 * failed authentication, unknown database) for the caller to report.
 */
export async function checkConnection(db: Db): Promise<void> {
  await sql`select 1`.execute(db);
}

/**
 * Copies every durable table of an SQLite installation into PostgreSQL: tasks, transitions,
 * deliveries, the LLM usage ledger, budget reservations and alerts, pauses — every table of the
 * SQLite file except the job queue (`jobs`; on PostgreSQL the queue is pg-boss) and kysely's own.
 *
 * 1. Refuses ({@link CopyRefusedError}, nothing written) when the SQLite file is not at this
 *    version's latest migration (older: start this version once on it; newer: use that version),
 *    or when jobs are queued or running there, unless `skipLiveJobs`.
 * 2. Runs PostgreSQL's migrations ({@link migrateToLatest}).
 * 3. In one PostgreSQL transaction (all or nothing), reading one SQLite snapshot: table by table,
 *    parents before the tables whose foreign keys reference them, copies the columns both sides
 *    have, keeping primary keys, `ON CONFLICT DO NOTHING`; then moves each serial/identity
 *    sequence forward to the largest copied id (never back), so new rows get ids above them.
 *
 * Idempotent: a second run inserts nothing and changes nothing. Rows already in PostgreSQL are
 * never updated — a row changed in SQLite after a first copy is reported as `differing`, not copied.
 *
 * @param source - the SQLite database (see {@link openSqliteSource})
 * @param target - the PostgreSQL database (`openPostgres`)
 */
export async function copySqliteToPostgres(source: Db, target: Db, options: CopyOptions = {}): Promise<CopyResult> {
  if (isPostgres(source)) throw new TypeError("copySqliteToPostgres: the source must be an SQLite database");
  if (!isPostgres(target)) throw new TypeError("copySqliteToPostgres: the target must be a PostgreSQL database");
  const batchSize = Math.max(1, Math.floor(options.batchSize ?? DEFAULT_BATCH_SIZE));

  // One read transaction on SQLite: every table is read from the same snapshot.
  return source.transaction().execute(async (src) => {
    await assertSourceAtLatest(src);
    const jobs = await jobCounts(src);
    if (jobs.live > 0 && !options.skipLiveJobs) {
      throw new CopyRefusedError(
        "live_jobs",
        `${jobs.live} job(s) are queued or running in the SQLite file and would be lost: stop the app, let it finish, or pass --skip-live-jobs`,
        jobs.live,
      );
    }
    const tables = await sourceTables(src);

    await migrateToLatest(target);

    return target.transaction().execute(async (tgt) => {
      const columnsByTable = new Map<string, TargetColumn[]>();
      for (const table of tables) {
        const columns = await targetColumns(tgt, table);
        if (columns.length === 0) throw new CopyRefusedError("schema_mismatch", `table ${table} of the SQLite file does not exist in PostgreSQL`);
        columnsByTable.set(table, columns);
      }
      const results: TableCopyResult[] = [];
      for (const table of await dependencyOrder(tgt, tables)) {
        results.push(await copyTable(src, tgt, table, columnsByTable.get(table) ?? [], batchSize));
      }
      for (const table of tables) await advanceSequences(tgt, table, columnsByTable.get(table) ?? []);
      return { tables: results, jobsNotCopied: jobs };
    });
  });
}

/** Refuses an SQLite file whose applied migrations are not exactly this version's. */
async function assertSourceAtLatest(src: Db): Promise<void> {
  const known = Object.keys(migrations);
  const hasTable = await sql<{ n: number }>`select count(*) as n from sqlite_master where type = 'table' and name = 'kysely_migration'`.execute(src);
  if (Number(hasTable.rows[0]?.n ?? 0) === 0) {
    throw new CopyRefusedError(
      "source_not_migrated",
      "the SQLite file has no migrations recorded: it is not a Mission Control database, or the app never started on it",
    );
  }
  const applied = new Set((await sql<{ name: string }>`select name from kysely_migration`.execute(src)).rows.map((r) => r.name));
  const newer = [...applied].filter((name) => !known.includes(name)).sort();
  if (newer.length > 0) {
    throw new CopyRefusedError(
      "source_newer",
      `the SQLite file was migrated by a newer version of Mission Control (${newer.join(", ")}): run that version's migrate-sqlite-to-postgres`,
    );
  }
  const pending = known.filter((name) => !applied.has(name));
  if (pending.length > 0) {
    throw new CopyRefusedError(
      "source_not_migrated",
      `the SQLite file is ${pending.length} migration(s) behind this version (${pending.join(", ")}): start this version of Mission Control once on the SQLite file (it migrates at start-up), stop it, then run this command again`,
    );
  }
}

/** Jobs of the SQLite queue: queued or running, and finished. */
async function jobCounts(src: Db): Promise<CopyResult["jobsNotCopied"]> {
  const rows = (await sql<{ state: string; n: number }>`select state, count(*) as n from jobs group by state`.execute(src)).rows;
  const live = rows.filter((r) => (LIVE_JOB_STATES as readonly string[]).includes(r.state)).reduce((sum, r) => sum + Number(r.n), 0);
  const all = rows.reduce((sum, r) => sum + Number(r.n), 0);
  return { live, finished: all - live };
}

/**
 * The SQLite file's tables that are copied. Virtual tables (the FTS5 index `learnings_fts` of
 * repository memory) and their shadow tables (`learnings_fts_data`, …) are SQLite's search
 * index, not data: PostgreSQL indexes the same rows itself (a generated `tsvector` column).
 */
async function sourceTables(src: Db): Promise<string[]> {
  const rows = (
    await sql<{
      name: string;
      sql: string | null;
    }>`select name, sql from sqlite_master where type = 'table' and name not like 'sqlite\\_%' escape '\\' order by name`.execute(src)
  ).rows;
  const virtual = rows.filter((r) => /^\s*create\s+virtual\s+table/i.test(r.sql ?? "")).map((r) => r.name);
  const isIndex = (name: string) => virtual.some((v) => name === v || name.startsWith(`${v}_`));
  return rows.map((r) => r.name).filter((name) => !NOT_COPIED.has(name) && !isIndex(name));
}

/** A column of a PostgreSQL table. */
interface TargetColumn {
  name: string;
  dataType: string;
  /** The sequence behind a serial or identity column (`public.tasks_id_seq`), else null. */
  sequence: string | null;
  primaryKey: boolean;
}

/** The columns of `table` in PostgreSQL's current schema; none when the table does not exist. */
async function targetColumns(tgt: Db, table: string): Promise<TargetColumn[]> {
  const rows = (
    await sql<{ name: string; data_type: string; sequence: string | null; primary_key: boolean }>`
      select c.column_name as name, c.data_type,
             pg_get_serial_sequence(format('%I.%I', c.table_schema, c.table_name), c.column_name) as sequence,
             exists (select 1 from information_schema.table_constraints tc
                       join information_schema.key_column_usage k
                         on k.constraint_schema = tc.constraint_schema and k.constraint_name = tc.constraint_name
                      where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = c.table_schema
                        and tc.table_name = c.table_name and k.column_name = c.column_name) as primary_key
        from information_schema.columns c
       where c.table_schema = current_schema() and c.table_name = ${table}
       order by c.ordinal_position`.execute(tgt)
  ).rows;
  return rows.map((r) => ({ name: r.name, dataType: r.data_type, sequence: r.sequence, primaryKey: r.primary_key }));
}

/**
 * `tables` ordered so that a table comes after every table its foreign keys (in PostgreSQL)
 * reference; otherwise alphabetical.
 */
async function dependencyOrder(tgt: Db, tables: readonly string[]): Promise<string[]> {
  const edges = (
    await sql<{ child: string; parent: string }>`
      select c.relname as child, p.relname as parent
        from pg_constraint k
        join pg_class c on c.oid = k.conrelid
        join pg_class p on p.oid = k.confrelid
       where k.contype = 'f' and c.relnamespace = current_schema()::regnamespace`.execute(tgt)
  ).rows;
  const parents = new Map<string, Set<string>>(tables.map((t) => [t, new Set<string>()]));
  for (const { child, parent } of edges) {
    if (child !== parent && parents.has(child) && parents.has(parent)) parents.get(child)?.add(parent);
  }
  const ordered: string[] = [];
  const remaining = [...tables].sort();
  while (remaining.length > 0) {
    const next = remaining.find((t) => [...(parents.get(t) ?? [])].every((p) => ordered.includes(p)));
    if (next === undefined)
      throw new CopyRefusedError("schema_mismatch", `the foreign keys of ${remaining.join(", ")} form a cycle: no table can be copied first`);
    ordered.push(next);
    remaining.splice(remaining.indexOf(next), 1);
  }
  return ordered;
}

type Row = Record<string, unknown>;

/** A value read from SQLite, as PostgreSQL's column wants it (SQLite has no boolean). */
function toTarget(value: unknown, column: TargetColumn): unknown {
  if (column.dataType === "boolean" && typeof value === "number") return value !== 0;
  return value;
}

type Scalar = string | number | boolean | bigint;

function isScalar(value: unknown): value is Scalar {
  return ["string", "number", "boolean", "bigint"].includes(typeof value);
}

/** JSON text as one canonical string (for a json column PostgreSQL hands back parsed), or the text itself. */
function jsonText(value: unknown): string {
  if (typeof value !== "string") return JSON.stringify(value);
  try {
    return JSON.stringify(JSON.parse(value));
  } catch {
    return value;
  }
}

/** Whether a value read back from PostgreSQL is the one copied from SQLite (an integer id in a text column reads back as text). */
function sameValue(copied: unknown, stored: unknown): boolean {
  if (copied === stored) return true;
  if (copied === null || stored === null || copied === undefined || stored === undefined) return false;
  if (Buffer.isBuffer(copied) && Buffer.isBuffer(stored)) return copied.equals(stored);
  if (isScalar(copied) && isScalar(stored)) return String(copied) === String(stored);
  return jsonText(copied) === jsonText(stored);
}

/** Copies one table in batches; see {@link copySqliteToPostgres}. */
async function copyTable(src: Db, tgt: Db, table: string, target: readonly TargetColumn[], batchSize: number): Promise<TableCopyResult> {
  const sourceColumns = (await sql<{ name: string }>`select name from pragma_table_info(${table}) order by cid`.execute(src)).rows.map((r) => r.name);
  const byName = new Map(target.map((c) => [c.name, c]));
  const columns = sourceColumns.flatMap((name) => byName.get(name) ?? []);
  const sourceOnlyColumns = sourceColumns.filter((name) => !byName.has(name));
  const key = columns.filter((c) => c.primaryKey);
  // Without the whole primary key among the copied columns, rows cannot be matched: count inserts only.
  const keyed = key.length > 0 && key.length === target.filter((c) => c.primaryKey).length;
  const perBatch = Math.max(1, Math.min(batchSize, Math.floor(MAX_PARAMETERS / Math.max(1, columns.length))));
  const columnList = sql.join(columns.map((c) => sql.id(c.name)));
  const result: TableCopyResult = { table, read: 0, inserted: 0, skipped: 0, differing: 0, sourceOnlyColumns };
  if (columns.length === 0) return result;

  let after: number | null = null;
  for (;;) {
    // Keyset pagination on SQLite's rowid, inside the read transaction's snapshot.
    const where: RawBuilder<unknown> = after === null ? sql`` : sql`where rowid > ${after}`;
    const batch = (
      await sql<
        Row & { __mc_rowid: number }
      >`select rowid as __mc_rowid, ${columnList} from ${sql.id(table)} ${where} order by rowid limit ${perBatch}`.execute(src)
    ).rows;
    if (batch.length === 0) break;
    after = batch[batch.length - 1]?.__mc_rowid ?? null;
    result.read += batch.length;

    const values = batch.map((row) => columns.map((c) => toTarget(row[c.name], c)));
    const tuples = sql.join(values.map((v) => sql`(${sql.join(v)})`));
    if (!keyed) {
      const { numAffectedRows } = await sql`insert into ${sql.id(table)} (${columnList}) values ${tuples} on conflict do nothing`.execute(tgt);
      result.inserted += Number(numAffectedRows ?? 0n);
      continue;
    }
    const keyList = sql.join(key.map((c) => sql.id(c.name)));
    const inserted = (await sql<Row>`insert into ${sql.id(table)} (${columnList}) values ${tuples} on conflict do nothing returning ${keyList}`.execute(tgt))
      .rows;
    result.inserted += inserted.length;
    const keyOf = (row: Row, pick: (c: TargetColumn) => unknown = (c) => row[c.name]) => JSON.stringify(key.map((c) => String(pick(c))));
    const insertedKeys = new Set(inserted.map((row) => keyOf(row)));
    const present = values.filter((v) => !insertedKeys.has(keyOf({}, (c) => v[columns.indexOf(c)])));
    if (present.length === 0) continue;

    // Rows PostgreSQL already had: compare them with SQLite's, to report any that differ.
    const keyTuples = sql.join(present.map((v) => sql`(${sql.join(key.map((c) => v[columns.indexOf(c)]))})`));
    const stored = (await sql<Row>`select ${columnList} from ${sql.id(table)} where (${keyList}) in (${keyTuples})`.execute(tgt)).rows;
    const storedByKey = new Map(stored.map((row) => [keyOf(row), row]));
    for (const v of present) {
      const row = storedByKey.get(keyOf({}, (c) => v[columns.indexOf(c)]));
      if (!row || columns.some((c, i) => !sameValue(v[i], row[c.name]))) result.differing += 1;
    }
  }
  result.skipped = result.read - result.inserted;
  return result;
}

/** Moves each sequence of `table` forward to the largest value of its column (never back). */
async function advanceSequences(tgt: Db, table: string, columns: readonly TargetColumn[]): Promise<void> {
  for (const column of columns) {
    if (column.sequence === null) continue;
    await sql`
      select setval(${column.sequence}::regclass, m.max_id)
        from (select max(${sql.id(column.name)}) as max_id from ${sql.id(table)}) m
       where m.max_id is not null
         and m.max_id > coalesce((select s.last_value from pg_sequences s
                                   where format('%I.%I', s.schemaname, s.sequencename)::regclass = ${column.sequence}::regclass), 0)`.execute(tgt);
  }
}
