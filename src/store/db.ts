import { mkdirSync } from "node:fs";
import path from "node:path";

import SQLite from "better-sqlite3";
import { Kysely, SqliteDialect } from "kysely";

import { inheritObservers } from "./events.js";
import { inheritQueue } from "./queue.js";
import type { Database } from "./schema.js";

/** The database handle. */
export type Db = Kysely<Database>;

/** A database handle or an open transaction: every store function takes one as its first argument. */
export type DbOrTrx = Kysely<Database>;

/**
 * Runs `fn` in one database transaction: everything it writes through `trx` commits together,
 * or nothing does when it throws (the error is rethrown). The only way code outside the store
 * opens a transaction, so that the store stays the owner of every write.
 */
export function inTransaction<T>(db: Db, fn: (trx: DbOrTrx) => Promise<T>): Promise<T> {
  return db.transaction().execute((trx) => {
    // On PostgreSQL, jobs enqueued in the transaction go to the database's pg-boss queue, in the transaction.
    inheritQueue(db, trx);
    // A transition or budget alert recorded in it reaches the database's observers (`events.ts`).
    inheritObservers(db, trx);
    return fn(trx);
  });
}

/** Milliseconds a connection waits for another writer's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

/**
 * Opens (creating if needed) the SQLite database file, in WAL mode with a busy timeout so a
 * second process on the same file waits instead of failing. The only importer of better-sqlite3.
 *
 * @param filePath - path of the database file; its folder is created. `:memory:` is allowed.
 */
export function openDatabase(filePath: string): Db {
  if (filePath !== ":memory:") mkdirSync(path.dirname(path.resolve(filePath)), { recursive: true });
  const sqlite = new SQLite(filePath);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  sqlite.pragma("foreign_keys = ON");
  sqlite.pragma("synchronous = NORMAL");
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
}

export { isDatabaseReachable, migrateToLatest } from "./migrate.js";
