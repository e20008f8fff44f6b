import { PostgresAdapter, type QueryExecutor } from "kysely";

/** Any kysely handle: a database, a transaction or a connection, of any schema (migrations use `Kysely<any>`). */
type Handle = { getExecutor(): QueryExecutor };

/** The SQL dialects the store speaks. */
export type Dialect = "sqlite" | "postgres";

/**
 * The dialect behind a database handle or transaction (by its kysely adapter), for the few
 * statements that differ: write locks, JSON updates, column types in migrations.
 */
export function dialectOf(db: Handle): Dialect {
  return db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
}

/** `true` on PostgreSQL. */
export function isPostgres(db: Handle): boolean {
  return dialectOf(db) === "postgres";
}

/**
 * Keys of the transaction-scoped advisory locks (`pg_advisory_xact_lock`) the store takes on
 * PostgreSQL: one lock per resource, released by the transaction's commit or rollback.
 * Arbitrary constants, distinct from kysely's migration lock and from each other.
 */
export const ADVISORY_LOCKS = {
  /** Migrations: several replicas starting together migrate once. */
  migrations: 7_112_026_001,
  /**
   * The budget ledger's previous single lock: versions before the per-scope locks took it
   * exclusively for every reservation; reservations now take it shared, so that during a rolling
   * upgrade a replica of either version still waits for the other's reservations.
   */
  budgets: 7_112_026_002,
  /**
   * The budget ledger's scopes: the first key of the two-key form (`pg_advisory_xact_lock(int4,
   * int4)`, a key space apart from the one-key form), the second a hash of the scope (see
   * `budgets.ts`).
   */
  budgetScopes: 71_120_262,
} as const;
