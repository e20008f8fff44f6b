/**
 * Repository memory (issue 14): learnings a writer asked the app to remember about one
 * repository (`/learn <text>`), listed by `/memory`, removed by `/forget <id>`, and searched by
 * full text for the agents' prompts — FTS5 on SQLite (`learnings_fts`, external content),
 * `tsvector` with a GIN index on PostgreSQL (`learnings.search`). See the migration
 * `2026-11-29T0200-memory`.
 */
import { sql } from "kysely";

import { MissionControlError } from "../domain/errors.js";
import type { RepositoryRename } from "../domain/repository.js";

import type { DbOrTrx } from "./db.js";
import { isPostgres } from "./dialect.js";
import type { Learning, LearningProposal } from "./schema.js";

export type { Learning, LearningProposal };

/** The longest learning, in characters (UTF-16 code units); `/learn` refuses longer text with a reply. */
export const MAX_LEARNING_CHARS = 2_000;

/** Terms of a search query at most; the rest of the query is ignored. */
export const MAX_QUERY_TERMS = 32;

/** Longest term kept, in characters (a longer "word" is a hash or base64, never a useful search term). */
const MAX_TERM_CHARS = 40;

/** Words too common to tell learnings apart (English; PostgreSQL's own list drops more). */
const STOP_WORDS: ReadonlySet<string> = new Set(
  "an as at be by do if in is it no of on or so to we the and for are but not you all any can her was one our out has have had this that with from they will would there their what when which who how into then than them these those its also been were should could about after before some such only other more most very just over use used using does did doing".split(
    " ",
  ),
);

/** What {@link addLearning} stores. */
export interface NewLearning {
  installationId: number;
  /** `owner/repo` (stored in lower case). */
  repository: string;
  /** The learning; at most {@link MAX_LEARNING_CHARS} characters. */
  text: string;
  /** The comment it came from. */
  sourceUrl: string;
  /**
   * What makes adding idempotent, unique per repository (e.g. `comment:<id>`): a second add with
   * the same key (a retried job) returns the first row and adds nothing.
   */
  sourceKey: string;
  /** GitHub login of the writer. */
  author: string;
  /** Epoch ms. */
  createdAt: number;
}

/** A learning's text is longer than {@link MAX_LEARNING_CHARS}. */
export class LearningTooLongError extends MissionControlError {
  constructor(readonly length: number) {
    super("learning_too_long", `a learning has at most ${MAX_LEARNING_CHARS} characters; this one has ${length}`);
  }
}

/**
 * Which installations' learnings a read covers: one installation id (the pipeline: the task's),
 * the ids a dashboard viewer may see (an empty list: none), or `null` for every installation
 * (only the operator's server-wide dashboard view). Learnings are keyed by installation and
 * repository name, so a repository of the same name under another installation (re-installed,
 * transferred, or a name reused) never reads or removes them.
 */
export type InstallationFilter = number | readonly number[] | null;

/** The installation ids of `filter` as a list, `null` for every installation. */
function installationIdsOf(filter: InstallationFilter): readonly number[] | null {
  return typeof filter === "number" ? [filter] : filter;
}

/** The repository key the table stores: `owner/repo` in lower case. */
export function repositoryKey(repository: string): string {
  return repository.trim().toLowerCase();
}

/**
 * Stores a learning, once per `sourceKey` and repository.
 *
 * @returns the stored row and whether this call added it (`false`: the source was already stored)
 * @throws {LearningTooLongError} when the text is over {@link MAX_LEARNING_CHARS} characters
 */
export async function addLearning(db: DbOrTrx, learning: NewLearning): Promise<{ learning: Learning; added: boolean }> {
  const text = learning.text.trim();
  if (text.length > MAX_LEARNING_CHARS) throw new LearningTooLongError(text.length);
  if (text === "") throw new RangeError("a learning needs text");
  const repository = repositoryKey(learning.repository);
  const inserted = await db
    .insertInto("learnings")
    .values({
      installation_id: learning.installationId,
      repository,
      text,
      source_url: learning.sourceUrl,
      source_key: learning.sourceKey,
      author: learning.author,
      created_at: learning.createdAt,
    })
    .onConflict((oc) => oc.columns(["repository", "source_key"]).doNothing())
    .returning("id")
    .executeTakeFirst();
  const row = await db
    .selectFrom("learnings")
    .select(LEARNING_COLUMNS)
    .where("repository", "=", repository)
    .where("source_key", "=", learning.sourceKey)
    .executeTakeFirstOrThrow();
  return { learning: row, added: inserted !== undefined };
}

/** The columns of a {@link Learning} (never PostgreSQL's generated `search`). */
const LEARNING_COLUMNS = ["id", "installation_id", "repository", "text", "source_url", "source_key", "author", "created_at"] as const;

/**
 * One page of a repository's learnings, newest first, and how many it has in all.
 *
 * @param installations - the installation(s) whose learnings count ({@link InstallationFilter})
 * @param page.limit - rows per page (1–100)
 * @param page.offset - rows skipped
 */
export async function listLearnings(
  db: DbOrTrx,
  installations: InstallationFilter,
  repository: string,
  page: { limit: number; offset: number } = { limit: 20, offset: 0 },
): Promise<{ learnings: Learning[]; total: number }> {
  const key = repositoryKey(repository);
  const ids = installationIdsOf(installations);
  if (ids !== null && ids.length === 0) return { learnings: [], total: 0 };
  const limit = Math.min(100, Math.max(1, Math.floor(page.limit)));
  const offset = Math.max(0, Math.floor(page.offset));
  const learnings = await db
    .selectFrom("learnings")
    .select(LEARNING_COLUMNS)
    .where("repository", "=", key)
    .$if(ids !== null, (qb) => qb.where("installation_id", "in", ids ?? []))
    .orderBy("id", "desc")
    .limit(limit)
    .offset(offset)
    .execute();
  const count = await db
    .selectFrom("learnings")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("repository", "=", key)
    .$if(ids !== null, (qb) => qb.where("installation_id", "in", ids ?? []))
    .executeTakeFirst();
  return { learnings, total: Number(count?.n ?? 0) };
}

/**
 * Removes learning `id` of `repository` in installation `installationId`; a learning of another
 * repository, or of the same name in another installation, is never touched.
 *
 * @returns the removed learning, or `undefined` when the repository has none with that id
 */
export async function forgetLearning(db: DbOrTrx, installationId: number, repository: string, id: number): Promise<Learning | undefined> {
  if (!Number.isSafeInteger(id) || id <= 0) return undefined;
  const key = repositoryKey(repository);
  const row = await db
    .selectFrom("learnings")
    .select(LEARNING_COLUMNS)
    .where("installation_id", "=", installationId)
    .where("repository", "=", key)
    .where("id", "=", id)
    .executeTakeFirst();
  if (!row) return undefined;
  await db.deleteFrom("learnings").where("installation_id", "=", installationId).where("repository", "=", key).where("id", "=", id).execute();
  return row;
}

/**
 * The search terms of free text: words (letters, digits) in lower case, 2–40 characters, common
 * English words dropped, each once, at most {@link MAX_QUERY_TERMS}. Every term is made of
 * letters and digits only, so no term can be FTS5 or tsquery syntax (`OR`, `NEAR(`, `*`, quotes,
 * `:`, `&`, `!` are all separators here).
 */
export function searchTerms(query: string): string[] {
  const terms = new Set<string>();
  for (const match of query
    .normalize("NFKC")
    .toLowerCase()
    .matchAll(/[\p{L}\p{N}]+/gu)) {
    const term = match[0];
    if (term.length < 2 || term.length > MAX_TERM_CHARS || STOP_WORDS.has(term)) continue;
    terms.add(term);
    if (terms.size >= MAX_QUERY_TERMS) break;
  }
  return [...terms];
}

/**
 * The learnings of `repository` in installation `installationId` most relevant to `query` (free text: the issue, the plan, the
 * touched paths), best first, at most `limit`: BM25 on SQLite (`bm25()`), `ts_rank` on
 * PostgreSQL, any term matching (OR). The query is reduced to {@link searchTerms}, so hostile
 * text cannot be search syntax. When no learning matches (or the query has no terms), the most
 * recent ones are returned instead, so a small memory always reaches the agents.
 */
export async function searchLearnings(db: DbOrTrx, installationId: number, repository: string, query: string, limit: number): Promise<Learning[]> {
  const max = Math.min(100, Math.max(0, Math.floor(limit)));
  if (max === 0) return [];
  const key = repositoryKey(repository);
  const terms = searchTerms(query);
  let found: Learning[] = [];
  if (terms.length > 0) {
    found = isPostgres(db) ? await searchPostgres(db, installationId, key, terms, max) : await searchSqlite(db, installationId, key, terms, max);
  }
  if (found.length > 0) return found;
  const recent = await listLearnings(db, installationId, key, { limit: max, offset: 0 });
  return recent.learnings;
}

/** FTS5: each term quoted (a phrase of one token), joined with OR; ranked by `bm25()` (lower is better). */
async function searchSqlite(db: DbOrTrx, installationId: number, repository: string, terms: string[], limit: number): Promise<Learning[]> {
  const match = terms.map((t) => `"${t.replace(/"/g, '""')}"`).join(" OR ");
  const { rows } = await sql<Learning>`
    select l.id, l.installation_id, l.repository, l.text, l.source_url, l.source_key, l.author, l.created_at
      from learnings_fts f join learnings l on l.id = f.rowid
     where learnings_fts match ${match} and l.installation_id = ${installationId} and l.repository = ${repository}
     order by bm25(learnings_fts), l.id desc
     limit ${limit}`.execute(db);
  return rows;
}

/** PostgreSQL: one `plainto_tsquery` per term (parameters, never parsed as tsquery syntax), OR-ed with `||`; ranked by `ts_rank`. */
async function searchPostgres(db: DbOrTrx, installationId: number, repository: string, terms: string[], limit: number): Promise<Learning[]> {
  const query = sql.join(
    terms.map((t) => sql`plainto_tsquery('english', ${t})`),
    sql` || `,
  );
  const { rows } = await sql<Learning>`
    select l.id, l.installation_id, l.repository, l.text, l.source_url, l.source_key, l.author, l.created_at
      from learnings l, (select ${query} as q) query
     where l.installation_id = ${installationId} and l.repository = ${repository} and l.search @@ query.q
     order by ts_rank(l.search, query.q) desc, l.id desc
     limit ${limit}`.execute(db);
  return rows.map((r) => ({ ...r, id: Number(r.id), installation_id: Number(r.installation_id), created_at: Number(r.created_at) }));
}

// ---------------------------------------------------------------------------------------------
// Proposals: learnings the app proposed in its replies to people's review comments.

/** A proposal waits this long for a writer's 👍 (epoch ms); older ones are no longer checked. */
export const PROPOSAL_TTL_MS = 30 * 24 * 60 * 60 * 1000;

/** What {@link addLearningProposal} stores. */
export interface NewLearningProposal {
  installationId: number;
  /** `owner/repo` (stored in lower case). */
  repository: string;
  pullNumber: number;
  /** The app's reply comment carrying the proposal. */
  commentId: number;
  /** The proposed learning (cut to {@link MAX_LEARNING_CHARS}). */
  text: string;
  sourceUrl: string;
  /** Epoch ms. */
  createdAt: number;
}

/** Records a proposal, once per reply comment (a retried job adds nothing). */
export async function addLearningProposal(db: DbOrTrx, proposal: NewLearningProposal): Promise<void> {
  await db
    .insertInto("learning_proposals")
    .values({
      installation_id: proposal.installationId,
      repository: repositoryKey(proposal.repository),
      pull_number: proposal.pullNumber,
      comment_id: proposal.commentId,
      text: proposal.text.trim().slice(0, MAX_LEARNING_CHARS),
      source_url: proposal.sourceUrl,
      state: "pending",
      created_at: proposal.createdAt,
      settled_at: null,
      learning_id: null,
    })
    .onConflict((oc) => oc.columns(["repository", "comment_id"]).doNothing())
    .execute();
}

/**
 * The pending proposals of `repository` in installation `installationId`, newest first, at most
 * `limit`; proposals older than {@link PROPOSAL_TTL_MS} are marked `expired` first and not returned.
 */
export async function pendingLearningProposals(
  db: DbOrTrx,
  installationId: number,
  repository: string,
  limit: number,
  now = Date.now(),
): Promise<LearningProposal[]> {
  const key = repositoryKey(repository);
  await db
    .updateTable("learning_proposals")
    .set({ state: "expired", settled_at: now })
    .where("installation_id", "=", installationId)
    .where("repository", "=", key)
    .where("state", "=", "pending")
    .where("created_at", "<", now - PROPOSAL_TTL_MS)
    .execute();
  const rows = await db
    .selectFrom("learning_proposals")
    .selectAll()
    .where("installation_id", "=", installationId)
    .where("repository", "=", key)
    .where("state", "=", "pending")
    .orderBy("id", "desc")
    .limit(Math.max(1, Math.floor(limit)))
    .execute();
  return rows.map((r) => ({ ...r, comment_id: Number(r.comment_id), installation_id: Number(r.installation_id), created_at: Number(r.created_at) }));
}

/**
 * Makes a pending proposal a learning taught by `author` (a writer who reacted 👍), in one
 * transaction-safe step: the learning is keyed by the reply comment, so a second confirmation
 * adds nothing.
 *
 * @returns the learning
 */
export async function acceptLearningProposal(db: DbOrTrx, proposal: LearningProposal, author: string, now = Date.now()): Promise<Learning> {
  const { learning } = await addLearning(db, {
    installationId: proposal.installation_id,
    repository: proposal.repository,
    text: proposal.text,
    sourceUrl: proposal.source_url,
    sourceKey: `review-reply:${proposal.comment_id}`,
    author,
    createdAt: now,
  });
  await db
    .updateTable("learning_proposals")
    .set({ state: "accepted", settled_at: now, learning_id: learning.id })
    .where("id", "=", proposal.id)
    .where("state", "=", "pending")
    .execute();
  return learning;
}

// ---------------------------------------------------------------------------------------------
// Rename

/**
 * The rename of a repository (`store/repository-rename.ts`), for repository memory: the
 * installation's learnings and learning proposals under `owner/from` move to `owner/to`. A row
 * whose source (a learning's `source_key`, a proposal's reply comment) the new name already has
 * — unique per repository — stays where it is rather than fail the rename.
 *
 * @returns how many learnings and proposals moved
 */
export async function renameRepositoryMemory(db: DbOrTrx, rename: RepositoryRename): Promise<{ learnings: number; proposals: number }> {
  const from = repositoryKey(`${rename.owner}/${rename.from}`);
  const to = repositoryKey(`${rename.owner}/${rename.to}`);
  if (from === to) return { learnings: 0, proposals: 0 };
  const learnings = await db
    .updateTable("learnings")
    .set({ repository: to })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", from)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb.selectFrom("learnings as other").select("other.id").where("other.repository", "=", to).whereRef("other.source_key", "=", "learnings.source_key"),
        ),
      ),
    )
    .executeTakeFirst();
  const proposals = await db
    .updateTable("learning_proposals")
    .set({ repository: to })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", from)
    .where((eb) =>
      eb.not(
        eb.exists(
          eb
            .selectFrom("learning_proposals as other")
            .select("other.id")
            .where("other.repository", "=", to)
            .whereRef("other.comment_id", "=", "learning_proposals.comment_id"),
        ),
      ),
    )
    .executeTakeFirst();
  return { learnings: Number(learnings.numUpdatedRows), proposals: Number(proposals.numUpdatedRows) };
}
