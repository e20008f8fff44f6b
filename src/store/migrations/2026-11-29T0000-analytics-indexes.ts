import type { Kysely } from "kysely";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * Indexes for the spend analytics (`store/analytics.ts`), chosen from the query plans of both
 * backends on a year of ledger rows for 100 repositories (`bench/analytics.ts`):
 *
 * - `llm_usage (installation_id, created_at)` and `llm_usage (repository, created_at)`: the
 *   dashboard's installation and repository filters read only their rows of the window instead
 *   of every row of the window (`llm_usage_time`, from the initial migration, serves the
 *   unfiltered window);
 * - `transitions (to_state, created_at)`: the tasks merged in a window, without reading every
 *   transition.
 *
 * The same statements on SQLite and PostgreSQL.
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("llm_usage_installation_time").on("llm_usage").columns(["installation_id", "created_at"]).execute();
  await db.schema.createIndex("llm_usage_repository_time").on("llm_usage").columns(["repository", "created_at"]).execute();
  await db.schema.createIndex("transitions_state_time").on("transitions").columns(["to_state", "created_at"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("transitions_state_time").execute();
  await db.schema.dropIndex("llm_usage_repository_time").execute();
  await db.schema.dropIndex("llm_usage_installation_time").execute();
}
