import { type Kysely, sql } from "kysely";

import { isPostgres } from "../dialect.js";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * `llm_usage.job_id` and `budget_reservations.job_id` hold the job's id as text: on PostgreSQL
 * the queue is pg-boss, whose job ids are uuids. SQLite needs no change: its job ids stay
 * integers, and an INTEGER-affinity column stores a numeric text as that integer.
 */
export async function up(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) return;
  for (const table of ["llm_usage", "budget_reservations"]) {
    await sql`alter table ${sql.id(table)} alter column job_id type text using job_id::text`.execute(db);
  }
}
