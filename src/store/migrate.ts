import { type Kysely, type MigrationProvider, Migrator, sql } from "kysely";

import { ADVISORY_LOCKS, isPostgres } from "./dialect.js";
import { migrations } from "./migrations/index.js";
import type { Database } from "./schema.js";

const provider: MigrationProvider = { getMigrations: () => Promise.resolve(migrations) };

function migrationError(error: unknown): Error {
  // Kysely types the error `unknown` (whatever the migration threw); a migration's own errors are Errors.
  return error instanceof Error ? error : new Error("migration failed", { cause: error });
}

/**
 * Applies every pending migration, on SQLite or PostgreSQL.
 *
 * On PostgreSQL every pending migration runs in one transaction that first takes a
 * transaction-scoped advisory lock (`pg_advisory_xact_lock`): replicas that start together
 * wait for the first one, then find nothing left to do; a replica that dies mid-way rolls back
 * and releases the lock with its connection (kysely's own session lock is left out by the
 * gateway's adapter, `postgres.ts`). On SQLite kysely's migrator locks through its lock
 * table and runs each migration in a transaction.
 *
 * @throws the migration's error; the failed migration is rolled back and nothing after it runs
 *   (on PostgreSQL: nothing of this call is kept).
 */
export async function migrateToLatest(db: Kysely<Database>): Promise<void> {
  if (!isPostgres(db)) {
    const { error } = await new Migrator({ db, provider }).migrateToLatest();
    if (error) throw migrationError(error);
    return;
  }
  await db.connection().execute(async (conn) => {
    await sql`begin`.execute(conn);
    try {
      await sql`select pg_advisory_xact_lock(${ADVISORY_LOCKS.migrations})`.execute(conn);
      // The migrator runs on this connection inside the transaction above (its own transactions off).
      const { error } = await new Migrator({ db: conn, provider, disableTransactions: true }).migrateToLatest();
      if (error) throw migrationError(error);
      await sql`commit`.execute(conn);
    } catch (err) {
      await sql`rollback`.execute(conn).catch(() => undefined);
      throw err;
    }
  });
}

/** `true` when a trivial query answers: used by `/healthz`. */
export async function isDatabaseReachable(db: Kysely<Database>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db);
    return true;
  } catch {
    return false;
  }
}
