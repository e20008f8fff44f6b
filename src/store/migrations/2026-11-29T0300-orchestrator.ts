import { type Kysely, sql } from "kysely";

import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * Orchestrator mode (issue 14): scheduled stand-ups and proposed follow-ups.
 *
 * - `repository_schedules`: one row per installation, repository and kind (`standup`), written
 *   whenever the app has read the repository's valid `.github/mission-control.yml`.
 *   `next_run_at` (epoch ms) is advanced in the same transaction that enqueues the job of a
 *   fire, by a compare-and-set on its old value, so two replicas ticking together enqueue it
 *   once. `repository` is `owner/repo` in lower case (GitHub compares names
 *   case-insensitively). `disabled_at` (epoch ms) is set when the config turns the stand-up off
 *   or the app lost the repository: the row (and its stand-up issue number) is kept, never
 *   fired, and enabled again when the config asks for a stand-up.
 * - `follow_up_proposals`: what the stand-up proposed; `fingerprint` is unique per installation
 *   and repository, so a proposal is never made twice (dismissed or accepted ones included).
 *   `number` is the proposal's number in the repository (`/approve <n>`, `/dismiss <n>`), also
 *   unique. The installation is part of both keys: a repository name reused in another
 *   installation inherits nothing.
 */
export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("repository_schedules")
    .addColumn("id", t.serial, t.id)
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("owner", "text", (c) => c.notNull())
    .addColumn("repo", "text", (c) => c.notNull())
    .addColumn("kind", "text", (c) => c.notNull())
    .addColumn("cron", "text", (c) => c.notNull())
    .addColumn("timezone", "text", (c) => c.notNull())
    .addColumn("next_run_at", t.bigint, (c) => c.notNull())
    .addColumn("last_run_at", t.bigint)
    .addColumn("standup_issue_number", t.integer)
    .addColumn("disabled_at", t.bigint)
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("updated_at", t.bigint, (c) => c.notNull())
    .addUniqueConstraint("repository_schedules_once", ["installation_id", "repository", "kind"])
    .addCheckConstraint("repository_schedules_kind", sql`kind in ('standup')`)
    .execute();
  await db.schema.createIndex("repository_schedules_due").on("repository_schedules").columns(["next_run_at"]).execute();

  await db.schema
    .createTable("follow_up_proposals")
    .addColumn("id", t.serial, t.id)
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("number", t.integer, (c) => c.notNull())
    .addColumn("fingerprint", "text", (c) => c.notNull())
    .addColumn("title", "text", (c) => c.notNull())
    .addColumn("body", "text", (c) => c.notNull())
    .addColumn("source_kind", "text", (c) => c.notNull())
    .addColumn("source_url", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("proposed_on", "text", (c) => c.notNull())
    .addColumn("decided_by", "text")
    .addColumn("decided_at", t.bigint)
    .addColumn("issue_number", t.integer)
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addUniqueConstraint("follow_up_proposals_fingerprint_once", ["installation_id", "repository", "fingerprint"])
    .addUniqueConstraint("follow_up_proposals_number_once", ["installation_id", "repository", "number"])
    .addCheckConstraint("follow_up_proposals_status", sql`status in ('proposed', 'accepted', 'dismissed')`)
    .addCheckConstraint("follow_up_proposals_source", sql`source_kind in ('todo', 'review_finding', 'flaky_check')`)
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["follow_up_proposals", "repository_schedules"]) {
    await db.schema.dropTable(table).execute();
  }
}
