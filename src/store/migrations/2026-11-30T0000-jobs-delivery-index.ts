import type { Kysely } from "kysely";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * `jobs (delivery_id, kind)`: the SQLite queue's "did this delivery already enqueue a job of this
 * kind" (`jobExistsForDelivery`, run by every triggering delivery's intake) reads one index entry
 * instead of scanning the `jobs` table, which keeps every finished stage job. The same statement
 * on PostgreSQL, where the table exists but the queue is pg-boss (which has its own index of
 * ours, `pg-queue.ts`).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.createIndex("jobs_delivery").on("jobs").columns(["delivery_id", "kind"]).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropIndex("jobs_delivery").execute();
}
