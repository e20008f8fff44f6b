import { type Kysely, sql } from "kysely";

import { isPostgres } from "../dialect.js";
import { columnTypes } from "./column-types.js";

// Frozen in time: never edit a migration that has shipped; add a new one.

/**
 * Repository memory (issue 14): `learnings`, one row per thing a writer asked the app to remember
 * about a repository (`/learn <text>`), with its source comment, author and time, and the
 * full-text index the agents' prompts are searched with.
 *
 * - `repository` is `owner/repo` in lower case (GitHub compares names case-insensitively).
 * - `source_key` makes adding idempotent: a retried job inserts nothing the second time
 *   (unique per repository).
 * - `learning_proposals`: a learning the app proposed in its reply to a person's review comment
 *   (`comment_id`: that reply), `pending` until a writer's 👍 on the reply makes it a learning
 *   (`accepted`, `learning_id`) or it is too old to wait for (`expired`).
 * - PostgreSQL: a stored generated `tsvector` column `search` (`to_tsvector('english', text)`)
 *   with a GIN index.
 * - SQLite: an FTS5 external-content table `learnings_fts` over `text` (`porter unicode61`
 *   tokenizer, so "tests" finds "test"), kept in step by three triggers, as the SQLite manual's
 *   "external content tables" section shows (https://sqlite.org/fts5.html#external_content_tables).
 */
export async function up(db: Kysely<any>): Promise<void> {
  const t = columnTypes(db);
  await db.schema
    .createTable("learnings")
    .addColumn("id", t.serial, t.id)
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("source_url", "text", (c) => c.notNull())
    .addColumn("source_key", "text", (c) => c.notNull())
    .addColumn("author", "text", (c) => c.notNull())
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addUniqueConstraint("learnings_source_once", ["repository", "source_key"])
    .execute();
  await db.schema.createIndex("learnings_repository").on("learnings").columns(["repository", "id"]).execute();

  // Learnings the app proposed in its reply to a person's review comment; a writer's 👍 on that reply confirms one.
  await db.schema
    .createTable("learning_proposals")
    .addColumn("id", t.serial, t.id)
    .addColumn("installation_id", t.bigint, (c) => c.notNull())
    .addColumn("repository", "text", (c) => c.notNull())
    .addColumn("pull_number", t.integer, (c) => c.notNull())
    .addColumn("comment_id", t.bigint, (c) => c.notNull())
    .addColumn("text", "text", (c) => c.notNull())
    .addColumn("source_url", "text", (c) => c.notNull())
    .addColumn("state", "text", (c) => c.notNull())
    .addColumn("created_at", t.bigint, (c) => c.notNull())
    .addColumn("settled_at", t.bigint)
    .addColumn("learning_id", t.integer)
    .addUniqueConstraint("learning_proposals_comment_once", ["repository", "comment_id"])
    .addCheckConstraint("learning_proposals_state", sql`state in ('pending', 'accepted', 'expired')`)
    .execute();
  await db.schema.createIndex("learning_proposals_pending").on("learning_proposals").columns(["repository", "state"]).execute();

  if (isPostgres(db)) {
    await sql`alter table learnings add column search tsvector generated always as (to_tsvector('english', text)) stored`.execute(db);
    await sql`create index learnings_search on learnings using gin (search)`.execute(db);
    return;
  }
  await sql`create virtual table learnings_fts using fts5(text, content='learnings', content_rowid='id', tokenize='porter unicode61')`.execute(db);
  await sql`create trigger learnings_fts_insert after insert on learnings begin
      insert into learnings_fts(rowid, text) values (new.id, new.text);
    end`.execute(db);
  await sql`create trigger learnings_fts_delete after delete on learnings begin
      insert into learnings_fts(learnings_fts, rowid, text) values ('delete', old.id, old.text);
    end`.execute(db);
  await sql`create trigger learnings_fts_update after update on learnings begin
      insert into learnings_fts(learnings_fts, rowid, text) values ('delete', old.id, old.text);
      insert into learnings_fts(rowid, text) values (new.id, new.text);
    end`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  if (!isPostgres(db)) {
    for (const trigger of ["learnings_fts_update", "learnings_fts_delete", "learnings_fts_insert"])
      await sql`drop trigger if exists ${sql.id(trigger)}`.execute(db);
    await sql`drop table if exists learnings_fts`.execute(db);
  }
  await db.schema.dropTable("learning_proposals").execute();
  await db.schema.dropTable("learnings").execute();
}
