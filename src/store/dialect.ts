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
  /** The budget ledger: reservations check and hold under it (see `budgets.ts`). */
  budgets: 7_112_026_002,
  /** Job claims: one claim at a time, so two jobs with one lock key never both start. */
  jobClaims: 7_112_026_003,
} as const;
