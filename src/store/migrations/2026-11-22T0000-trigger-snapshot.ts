import type { Kysely } from "kysely";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * What the maintainer saw when they triggered the work, and what the app must tell them:
 * the title and body as they were at the trigger (every agent reads this copy, never
 * the live issue), the problems of an invalid repository config (work stops until it is fixed),
 * and notes shown in the tracking comment (an edit that was ignored, a close that did not stop
 * the run).
 */
export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable("tasks").addColumn("issue_title", "text").execute();
  await db.schema.alterTable("tasks").addColumn("issue_body", "text").execute();
  await db.schema.alterTable("tasks").addColumn("config_problems", "text").execute();
  await db.schema.alterTable("tasks").addColumn("tracking_notes", "text").execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const column of ["tracking_notes", "config_problems", "issue_body", "issue_title"]) {
    await db.schema.alterTable("tasks").dropColumn(column).execute();
  }
}
