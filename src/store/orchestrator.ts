/**
 * Orchestrator mode (issue 14): repository schedules (the stand-up), the facts a stand-up
 * reports, and the follow-up proposals it makes. The only SQL of these tables.
 */
import { sql } from "kysely";

import type { RepositoryRename } from "../domain/repository.js";
import type { DbOrTrx } from "./db.js";
import type { FollowUpProposal, FollowUpSourceKind, FollowUpStatus, RepositorySchedule, Task, Transition } from "./schema.js";

/** `owner/repo` in lower case: the key of a repository in these tables. */
export function repositoryKey(owner: string, repo: string): string {
  return `${owner}/${repo}`.toLowerCase();
}

/**
 * A repository as these tables key it: the installation and `owner/repo`. A repository name
 * reused in another installation (the old one uninstalled, or the name taken by someone else)
 * inherits no schedule, stand-up issue or proposal.
 */
export interface RepositoryRef {
  installationId: number;
  owner: string;
  repo: string;
}

// ---------------------------------------------------------------------------------------------
// Schedules

/** What {@link upsertSchedule} writes. */
export interface ScheduleSpec extends RepositoryRef {
  kind: "standup";
  cron: string;
  timezone: string;
}

/**
 * Records a repository's schedule as its config now gives it. A new row, a changed cron or
 * time zone, or a disabled row enabled again takes `nextRunAt()` (epoch ms) as its next fire;
 * an unchanged schedule keeps its next fire (so reading the config again never delays or
 * repeats a stand-up). An enabled-again row keeps its stand-up issue and last run.
 *
 * @returns the row as it now stands
 */
export async function upsertSchedule(db: DbOrTrx, spec: ScheduleSpec, nextRunAt: () => number, now = Date.now()): Promise<RepositorySchedule> {
  const repository = repositoryKey(spec.owner, spec.repo);
  const existing = await findSchedule(db, spec, spec.kind);
  if (!existing) {
    await db
      .insertInto("repository_schedules")
      .values({
        installation_id: spec.installationId,
        repository,
        owner: spec.owner,
        repo: spec.repo,
        kind: spec.kind,
        cron: spec.cron,
        timezone: spec.timezone,
        next_run_at: nextRunAt(),
        last_run_at: null,
        standup_issue_number: null,
        disabled_at: null,
        created_at: now,
        updated_at: now,
      })
      .onConflict((oc) => oc.columns(["installation_id", "repository", "kind"]).doNothing())
      .execute();
  } else if (existing.disabled_at !== null || existing.cron !== spec.cron || existing.timezone !== spec.timezone) {
    await db
      .updateTable("repository_schedules")
      .set({ cron: spec.cron, timezone: spec.timezone, next_run_at: nextRunAt(), owner: spec.owner, repo: spec.repo, disabled_at: null, updated_at: now })
      .where("id", "=", existing.id)
      .execute();
  } else if (existing.owner !== spec.owner || existing.repo !== spec.repo) {
    await db.updateTable("repository_schedules").set({ owner: spec.owner, repo: spec.repo, updated_at: now }).where("id", "=", existing.id).execute();
  }
  const row = await findSchedule(db, spec, spec.kind);
  if (!row) throw new Error(`the ${spec.kind} schedule of ${repository} was not written`);
  return row;
}

/**
 * Disables a repository's schedule of `kind` (its config turned it off, or the app lost the
 * repository): it no longer fires, but the row — and the stand-up issue number, so `/approve <n>`
 * on the old stand-up issue still means a proposal — is kept for {@link upsertSchedule} to
 * enable again.
 *
 * @returns `true` when an enabled schedule was disabled now
 */
export async function disableSchedule(db: DbOrTrx, ref: RepositoryRef, kind: "standup", now = Date.now()): Promise<boolean> {
  const result = await db
    .updateTable("repository_schedules")
    .set({ disabled_at: now, updated_at: now })
    .where("installation_id", "=", ref.installationId)
    .where("repository", "=", repositoryKey(ref.owner, ref.repo))
    .where("kind", "=", kind)
    .where("disabled_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) > 0;
}

/**
 * Disables every enabled schedule of an installation (the app was uninstalled), or only those of
 * `repositories` (`owner/repo`, any case: they were removed from the installation). Rows are
 * kept, like {@link disableSchedule}'s.
 *
 * @returns how many schedules were disabled now
 */
export async function disableInstallationSchedules(db: DbOrTrx, installationId: number, repositories?: readonly string[], now = Date.now()): Promise<number> {
  if (repositories?.length === 0) return 0;
  let query = db
    .updateTable("repository_schedules")
    .set({ disabled_at: now, updated_at: now })
    .where("installation_id", "=", installationId)
    .where("disabled_at", "is", null);
  if (repositories)
    query = query.where(
      "repository",
      "in",
      repositories.map((r) => r.toLowerCase()),
    );
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The repository's schedule of `kind` in the installation, if any (enabled or disabled: see `disabled_at`). */
export async function findSchedule(db: DbOrTrx, ref: RepositoryRef, kind: "standup"): Promise<RepositorySchedule | undefined> {
  const row = await db
    .selectFrom("repository_schedules")
    .selectAll()
    .where("installation_id", "=", ref.installationId)
    .where("repository", "=", repositoryKey(ref.owner, ref.repo))
    .where("kind", "=", kind)
    .executeTakeFirst();
  return row && normaliseSchedule(row);
}

/** Enabled schedules whose next fire is at or before `now` (epoch ms), oldest first, at most `limit`. */
export async function dueSchedules(db: DbOrTrx, now: number, limit = 100): Promise<RepositorySchedule[]> {
  const rows = await db
    .selectFrom("repository_schedules")
    .selectAll()
    .where("disabled_at", "is", null)
    .where("next_run_at", "<=", now)
    .orderBy("next_run_at")
    .orderBy("id")
    .limit(limit)
    .execute();
  return rows.map(normaliseSchedule);
}

/**
 * Moves an enabled schedule's next fire from `expected` to `next` (epoch ms) — a compare-and-set,
 * so of two replicas firing the same schedule together exactly one succeeds, and a schedule
 * disabled meanwhile is not fired.
 *
 * @returns `true` when this call moved it
 */
export async function advanceSchedule(trx: DbOrTrx, id: number, expected: number, next: number, now = Date.now()): Promise<boolean> {
  const result = await trx
    .updateTable("repository_schedules")
    .set({ next_run_at: next, updated_at: now })
    .where("id", "=", id)
    .where("next_run_at", "=", expected)
    .where("disabled_at", "is", null)
    .executeTakeFirst();
  return Number(result.numUpdatedRows) === 1;
}

/** Records a written stand-up: when (epoch ms) and on which issue. */
export async function recordStandupRun(db: DbOrTrx, id: number, ranAt: number, issueNumber: number): Promise<void> {
  await db.updateTable("repository_schedules").set({ last_run_at: ranAt, standup_issue_number: issueNumber, updated_at: ranAt }).where("id", "=", id).execute();
}

/**
 * The repository's stand-up issue numbers, if any was written — also while the stand-up is off.
 * With `installationId`, only that installation's; without, every installation's that had
 * the name (callers that know the installation pass it).
 */
export async function standupIssueNumbers(db: DbOrTrx, owner: string, repo: string, installationId?: number): Promise<number[]> {
  let query = db
    .selectFrom("repository_schedules")
    .select("standup_issue_number")
    .where("repository", "=", repositoryKey(owner, repo))
    .where("kind", "=", "standup")
    .where("standup_issue_number", "is not", null);
  if (installationId !== undefined) query = query.where("installation_id", "=", installationId);
  return (await query.execute()).map((r) => Number(r.standup_issue_number));
}

/** PostgreSQL returns `bigint` columns as text through some drivers: numbers here, always. */
function normaliseSchedule(row: RepositorySchedule): RepositorySchedule {
  return {
    ...row,
    id: Number(row.id),
    installation_id: Number(row.installation_id),
    next_run_at: Number(row.next_run_at),
    last_run_at: row.last_run_at === null ? null : Number(row.last_run_at),
    standup_issue_number: row.standup_issue_number === null ? null : Number(row.standup_issue_number),
    disabled_at: row.disabled_at === null ? null : Number(row.disabled_at),
    created_at: Number(row.created_at),
    updated_at: Number(row.updated_at),
  };
}

// ---------------------------------------------------------------------------------------------
// Facts

/** A task with the transitions it made in a period. */
export interface TaskActivity {
  task: Task;
  /** Oldest first. */
  transitions: Transition[];
}

/**
 * The repository's tasks (in its installation) that changed state in `(from, to]` (epoch ms),
 * each with those transitions, oldest task first. `exceptIssue` (the stand-up issue) is left out.
 */
export async function taskActivity(db: DbOrTrx, ref: RepositoryRef, from: number, to: number, exceptIssue: number | null): Promise<TaskActivity[]> {
  const rows = await db
    .selectFrom("transitions")
    .innerJoin("tasks", "tasks.id", "transitions.task_id")
    .selectAll("transitions")
    .where("tasks.installation_id", "=", ref.installationId)
    .where(sql<boolean>`lower(tasks.owner) = ${ref.owner.toLowerCase()} and lower(tasks.repo) = ${ref.repo.toLowerCase()}`)
    .where("transitions.created_at", ">", from)
    .where("transitions.created_at", "<=", to)
    .orderBy("transitions.id")
    .execute();
  const byTask = new Map<number, Transition[]>();
  for (const row of rows) {
    const list = byTask.get(row.task_id) ?? [];
    list.push({ ...row, created_at: Number(row.created_at) });
    byTask.set(row.task_id, list);
  }
  if (byTask.size === 0) return [];
  const tasks = await db
    .selectFrom("tasks")
    .selectAll()
    .where("id", "in", [...byTask.keys()])
    .orderBy("id")
    .execute();
  return tasks.filter((t) => t.issue_number !== exceptIssue).map((task) => ({ task, transitions: byTask.get(task.id) ?? [] }));
}

/**
 * The repository's tasks (in its installation) that wait for a person now: `blocked` (a plan to
 * approve, a limit, a config problem) and `ready_for_merge`, oldest first. `exceptIssue` is left out.
 */
export async function tasksWaitingForPeople(db: DbOrTrx, ref: RepositoryRef, exceptIssue: number | null): Promise<Task[]> {
  const rows = await db
    .selectFrom("tasks")
    .selectAll()
    .where("installation_id", "=", ref.installationId)
    .where(sql<boolean>`lower(owner) = ${ref.owner.toLowerCase()} and lower(repo) = ${ref.repo.toLowerCase()}`)
    .where("stage", "in", ["blocked", "ready_for_merge"])
    .orderBy("id")
    .execute();
  return rows.filter((t) => t.issue_number !== exceptIssue);
}

/**
 * Review verdicts of the Reviewer, counted over the repository's tasks (their latest verdict),
 * optionally only tasks with a transition in `(from, to]` and only those of `installationId`.
 */
export async function reviewVerdictCounts(
  db: DbOrTrx,
  owner: string,
  repo: string,
  period?: { from: number; to: number },
  installationId?: number,
): Promise<Array<{ verdict: string; tasks: number }>> {
  let query = db
    .selectFrom("tasks")
    .select(["review_verdict as verdict", (eb) => eb.fn.countAll<number | string>().as("tasks")])
    .where(sql<boolean>`lower(owner) = ${owner.toLowerCase()} and lower(repo) = ${repo.toLowerCase()}`)
    .where("review_verdict", "is not", null)
    .groupBy("review_verdict")
    .orderBy("review_verdict");
  if (installationId !== undefined) query = query.where("installation_id", "=", installationId);
  if (period) {
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom("transitions")
          .select("transitions.id")
          .whereRef("transitions.task_id", "=", "tasks.id")
          .where("transitions.created_at", ">", period.from)
          .where("transitions.created_at", "<=", period.to),
      ),
    );
  }
  const rows = await query.execute();
  return rows.map((r) => ({ verdict: String(r.verdict), tasks: Number(r.tasks) }));
}

// ---------------------------------------------------------------------------------------------
// Proposals

/** A follow-up the stand-up found, before it is stored. */
export interface ProposalCandidate {
  fingerprint: string;
  title: string;
  body: string;
  sourceKind: FollowUpSourceKind;
  sourceUrl: string;
}

/**
 * Stores new proposals for the stand-up of `proposedOn` (`YYYY-MM-DD`): candidates whose
 * fingerprint the repository (in its installation) never had (whatever became of it: a dismissed proposal never comes
 * back), until the day has `maxPerDay` proposals. Each gets the repository's next number.
 * Run once per repository at a time (the stand-up's lock): numbers are taken in order.
 *
 * @returns the proposals stored now
 */
export async function addProposals(
  db: DbOrTrx,
  ref: RepositoryRef,
  candidates: readonly ProposalCandidate[],
  options: { proposedOn: string; maxPerDay: number; now?: number },
): Promise<FollowUpProposal[]> {
  const repository = repositoryKey(ref.owner, ref.repo);
  const installationId = ref.installationId;
  const now = options.now ?? Date.now();
  const today = await db
    .selectFrom("follow_up_proposals")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("installation_id", "=", installationId)
    .where("repository", "=", repository)
    .where("proposed_on", "=", options.proposedOn)
    .executeTakeFirst();
  let room = options.maxPerDay - Number(today?.n ?? 0);
  const added: FollowUpProposal[] = [];
  const seen = new Set<string>();
  for (const candidate of candidates) {
    if (room <= 0) break;
    if (seen.has(candidate.fingerprint)) continue;
    seen.add(candidate.fingerprint);
    const known = await db
      .selectFrom("follow_up_proposals")
      .select("id")
      .where("installation_id", "=", installationId)
      .where("repository", "=", repository)
      .where("fingerprint", "=", candidate.fingerprint)
      .executeTakeFirst();
    if (known) continue;
    const last = await db
      .selectFrom("follow_up_proposals")
      .select((eb) => eb.fn.max("number").as("n"))
      .where("installation_id", "=", installationId)
      .where("repository", "=", repository)
      .executeTakeFirst();
    const row = await db
      .insertInto("follow_up_proposals")
      .values({
        installation_id: installationId,
        repository,
        number: Number(last?.n ?? 0) + 1,
        fingerprint: candidate.fingerprint,
        title: candidate.title.slice(0, 200),
        body: candidate.body.slice(0, 20_000),
        source_kind: candidate.sourceKind,
        source_url: candidate.sourceUrl,
        status: "proposed",
        proposed_on: options.proposedOn,
        decided_by: null,
        decided_at: null,
        issue_number: null,
        created_at: now,
      })
      .onConflict((oc) => oc.doNothing())
      .returningAll()
      .executeTakeFirst();
    if (!row) continue;
    added.push(normaliseProposal(row));
    room -= 1;
  }
  return added;
}

/**
 * The proposals a stand-up lists: every one still open, and those decided at or after
 * `decidedSince` (epoch ms), by number.
 */
export async function proposalsToList(db: DbOrTrx, ref: RepositoryRef, decidedSince: number): Promise<FollowUpProposal[]> {
  const rows = await db
    .selectFrom("follow_up_proposals")
    .selectAll()
    .where("installation_id", "=", ref.installationId)
    .where("repository", "=", repositoryKey(ref.owner, ref.repo))
    .where((eb) => eb.or([eb("status", "=", "proposed"), eb("decided_at", ">=", decidedSince)]))
    .orderBy("number")
    .execute();
  return rows.map(normaliseProposal);
}

/** Proposal number `n` of the repository (in its installation), if any. */
export async function findProposal(db: DbOrTrx, ref: RepositoryRef, n: number): Promise<FollowUpProposal | undefined> {
  const row = await db
    .selectFrom("follow_up_proposals")
    .selectAll()
    .where("installation_id", "=", ref.installationId)
    .where("repository", "=", repositoryKey(ref.owner, ref.repo))
    .where("number", "=", n)
    .executeTakeFirst();
  return row && normaliseProposal(row);
}

/** Records a writer's decision on a proposal (and the issue opened for an accepted one). */
export async function decideProposal(
  db: DbOrTrx,
  id: number,
  decision: { status: Exclude<FollowUpStatus, "proposed">; by: string; issueNumber?: number | null; now?: number },
): Promise<void> {
  await db
    .updateTable("follow_up_proposals")
    .set({ status: decision.status, decided_by: decision.by, decided_at: decision.now ?? Date.now(), issue_number: decision.issueNumber ?? null })
    .where("id", "=", id)
    .execute();
}

/** Records the issue opened for a proposal before it is marked accepted (so a retried job finds it). */
export async function setProposalIssue(db: DbOrTrx, id: number, issueNumber: number): Promise<void> {
  await db.updateTable("follow_up_proposals").set({ issue_number: issueNumber }).where("id", "=", id).execute();
}

function normaliseProposal(row: FollowUpProposal): FollowUpProposal {
  return {
    ...row,
    id: Number(row.id),
    installation_id: Number(row.installation_id),
    number: Number(row.number),
    decided_at: row.decided_at === null ? null : Number(row.decided_at),
    issue_number: row.issue_number === null ? null : Number(row.issue_number),
    created_at: Number(row.created_at),
  };
}

// ---------------------------------------------------------------------------------------------
// Rename

/** `true` when the repository (in its installation) has a schedule (enabled or not) or a follow-up proposal. */
export async function repositoryHasSchedulesOrProposals(db: DbOrTrx, ref: RepositoryRef): Promise<boolean> {
  // The stand-up is the only kind of schedule.
  if (await findSchedule(db, ref, "standup")) return true;
  const proposal = await db
    .selectFrom("follow_up_proposals")
    .select("id")
    .where("installation_id", "=", ref.installationId)
    .where("repository", "=", repositoryKey(ref.owner, ref.repo))
    .limit(1)
    .executeTakeFirst();
  return proposal !== undefined;
}

/**
 * The rename of a repository (`store/repository-rename.ts`), for orchestrator mode: the
 * installation's schedules (with their stand-up issue and next fire) and follow-up proposals
 * (with their numbers) under `owner/from` move to `owner/to`. The caller has checked that the new
 * name has none in the installation (both tables are unique per installation and name).
 *
 * @returns how many schedules and proposals moved
 */
export async function renameRepositorySchedules(db: DbOrTrx, rename: RepositoryRename): Promise<{ schedules: number; proposals: number }> {
  const from = repositoryKey(rename.owner, rename.from);
  const to = repositoryKey(rename.owner, rename.to);
  const schedules = await db
    .updateTable("repository_schedules")
    .set({ repository: to, owner: rename.owner, repo: rename.to })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", from)
    // A rename that changes only the name's case leaves the key as it is: only the name as shown changes.
    .where((eb) => eb.or([eb("repository", "<>", to), eb("repo", "<>", rename.to)]))
    .executeTakeFirst();
  if (from === to) return { schedules: Number(schedules.numUpdatedRows), proposals: 0 };
  const proposals = await db
    .updateTable("follow_up_proposals")
    .set({ repository: to })
    .where("installation_id", "=", rename.installationId)
    .where("repository", "=", from)
    .executeTakeFirst();
  return { schedules: Number(schedules.numUpdatedRows), proposals: Number(proposals.numUpdatedRows) };
}
