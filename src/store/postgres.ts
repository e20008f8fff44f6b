import { type DialectAdapter, Kysely, PostgresAdapter, PostgresDialect } from "kysely";
import pg from "pg";

import type { Db } from "./db.js";
import type { Database } from "./schema.js";

/** PostgreSQL type oid of `bigint` (int8). */
const INT8_OID = 20;

/**
 * `bigint` columns (epoch milliseconds, GitHub ids, `count(*)`) come back as JS numbers, as
 * on SQLite. pg returns them as strings by default because an int8 may exceed 2^53; the store's
 * never do (epoch ms until the year 285 616), and one that did would throw rather than round.
 */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`bigint ${value} does not fit a JS number exactly`);
  return n;
}

const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: "text" | "binary"): ((value: string) => unknown) =>
    oid === INT8_OID && format !== "binary"
      ? parseInt8
      : (pg.types.getTypeParser(oid, format) as (value: string) => unknown)) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * Kysely's PostgreSQL adapter without its own migration lock. `migrateToLatest` (migrate.ts)
 * runs every migration in one transaction that first takes a transaction-scoped advisory lock;
 * kysely's session-level lock inside it would be redundant, and its unlock, run after a failed
 * migration in the aborted transaction, would replace the migration's error with "current
 * transaction is aborted".
 */
class TransactionLockedPostgresAdapter extends PostgresAdapter {
  override async acquireMigrationLock(): Promise<void> {}
  override async releaseMigrationLock(): Promise<void> {}
}

class StorePostgresDialect extends PostgresDialect {
  override createAdapter(): DialectAdapter {
    return new TransactionLockedPostgresAdapter();
  }
}

/** Options of {@link openPostgres}. */
export interface PostgresOptions {
  /** Connections in the pool (default 10). */
  maxConnections?: number;
  /**
   * Told when an idle connection fails (the server restarted, an administrator ended it). The
   * pool drops that connection and opens another for the next query; without a listener pg's
   * pool would raise the error as an uncaught exception and end the process. Default: ignored.
   */
  onIdleError?: (error: Error) => void;
}

/**
 * Opens a pool of connections to the PostgreSQL database at `url` (`postgres://…`), behind the
 * same {@link Db} type as the SQLite file. The only importer of `pg`. Nothing is connected until
 * the first query; `db.destroy()` ends the pool.
 */
export function openPostgres(url: string, options: PostgresOptions = {}): Db {
  const pool = new pg.Pool({ connectionString: url, max: options.maxConnections ?? 10, types });
  pool.on("error", options.onIdleError ?? (() => undefined));
  return new Kysely<Database>({ dialect: new StorePostgresDialect({ pool }) });
}
