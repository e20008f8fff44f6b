/**
 * Orchestrator mode (issue 14, items 1–3 and 5): the per-repository stand-up schedule, the
 * `standup` job that writes the daily stand-up issue from the store's facts, the follow-ups it
 * proposes, and the `/approve <n>` / `/dismiss <n>` commands on the stand-up issue.
 *
 * Scheduling: whenever the app reads a repository's valid config, {@link syncStandupSchedule}
 * records (or disables) its `repository_schedules` row. The shared periodic task
 * `orchestrator-tick` (every minute; once across replicas on PostgreSQL through pg-boss's
 * schedule, in-process on SQLite) calls {@link enqueueDueStandups}: one store transaction per
 * due row advances `next_run_at` by compare-and-set and enqueues a `standup` job whose dedupe
 * key names the repository and the fire time, so two replicas or workers ticking together
 * enqueue it once. A stand-up never runs more than once an hour ({@link MIN_STANDUP_INTERVAL_MS}).
 */
import { createHash } from "node:crypto";

import type { Logger } from "pino";

import { localDate, MIN_STANDUP_INTERVAL_MS, nextFireAt } from "../config/cron.js";
import { parseRepoConfig, REPO_CONFIG_FILE, repoBudgetLimits, RepoConfig } from "../config/repo-config.js";
import { mergeLimits } from "../domain/budget-rules.js";
import { redactSecrets } from "../domain/redact.js";
import { type CommandJobPayload, commandLockKey, type NotificationEvent, type StandupPayload, standupDedupeKey, standupLockKey } from "../domain/jobs.js";
import type { GitHubPort } from "../ports/github.js";
import {
  inline,
  renderAgentStatistics,
  renderProposals,
  renderStandup,
  replaceProposals,
  STANDUP_TOPIC,
  type StandupActivity,
  type StandupProposal,
  type StandupView,
  type StandupWaiting,
  standupTitle,
} from "../render/standup.js";
import { agentStatistics, budgetUse, spendTotals } from "../store/analytics.js";
import { type Db, type DbOrTrx, inTransaction } from "../store/db.js";
import {
  addProposals,
  advanceSchedule,
  decideProposal,
  disableSchedule,
  dueSchedules,
  findProposal,
  findSchedule,
  type ProposalCandidate,
  proposalsToList,
  recordStandupRun,
  type RepositoryRef,
  reviewVerdictCounts,
  setProposalIssue,
  standupIssueNumbers,
  taskActivity,
  tasksWaitingForPeople,
  upsertSchedule,
} from "../store/orchestrator.js";
import { enqueueJob } from "../store/queue.js";
import type { FollowUpProposal, Task, Transition } from "../store/schema.js";
import { transitionsOf } from "../store/transitions.js";
import type { ClaimedJob, JobResult } from "../worker/worker.js";
import type { PipelineDeps } from "./pipeline-deps.js";

/** A claimed `standup` job. */
export type StandupJob = ClaimedJob & { data: { kind: "standup"; payload: StandupPayload } };

/** Milliseconds in a day: the first stand-up covers the day before it. */
const DAY_MS = 86_400_000;

/** Pull requests whose files, review threads and check runs are read for proposals, per stand-up. */
const MAX_PULL_REQUESTS_READ = 10;

// ---------------------------------------------------------------------------------------------
// Scheduling

/**
 * Records the repository's stand-up schedule as `config` gives it (`orchestrator.standup`), or
 * disables it when the stand-up is off (the row and its stand-up issue are kept, so turning it
 * on again edits the same issue). Called wherever the app has read a valid config; an
 * unchanged schedule keeps its next fire.
 */
export async function syncStandupSchedule(
  db: DbOrTrx,
  target: { installationId: number; owner: string; repo: string },
  config: RepoConfig,
  now = Date.now(),
): Promise<void> {
  const standup = config.orchestrator.standup;
  if (!standup) {
    await disableSchedule(db, target, "standup", now);
    return;
  }
  await upsertSchedule(
    db,
    { ...target, kind: "standup", cron: standup.cron, timezone: standup.timezone },
    () => nextFireAt(standup.cron, standup.timezone, now),
    now,
  );
}

/**
 * The `orchestrator-tick`: for every enabled schedule due at `now` (epoch ms; a fake clock in
 * tests), in one transaction, moves its next fire past `now` (fires missed while no replica ran
 * are not caught up: one stand-up, then the next regular time) and enqueues the `standup` job
 * of the fire it was due for. Two callers racing on one database enqueue each fire once: the
 * compare-and-set on `next_run_at` lets one through, and the job's dedupe key names the fire.
 *
 * At most one stand-up an hour ({@link MIN_STANDUP_INTERVAL_MS}), whatever the stored cron says
 * (a schedule stored before the config check, or a time-zone change): a fire earlier than
 * `last_run_at` + 1 h is not enqueued — `next_run_at` moves to the first fire at or after that
 * time instead — and the next fire after an enqueued one is at least an hour after it.
 *
 * The job runs in the stand-up issue's command lane once the issue exists (see
 * {@link standupJobLockKey}).
 *
 * @returns how many jobs this call enqueued
 */
export async function enqueueDueStandups(db: Db, now: number, options: { maxAttempts?: number; log?: Logger } = {}): Promise<number> {
  let enqueued = 0;
  for (const row of await dueSchedules(db, now)) {
    const earliest = row.last_run_at === null ? null : row.last_run_at + MIN_STANDUP_INTERVAL_MS;
    const tooSoon = earliest !== null && row.next_run_at < earliest;
    let next: number;
    try {
      next = tooSoon
        ? nextFireAt(row.cron, row.timezone, Math.max(now, earliest - 1))
        : nextFireAt(row.cron, row.timezone, Math.max(now, row.next_run_at + MIN_STANDUP_INTERVAL_MS - 1));
    } catch (err) {
      // A schedule croner no longer accepts (it was valid when stored): try again in a day.
      options.log?.warn({ err, repository: row.repository }, "stand-up schedule cannot be computed; retried in a day");
      next = now + DAY_MS;
    }
    if (tooSoon) {
      // Within an hour of the last stand-up: skipped, not enqueued.
      if (await advanceSchedule(db, row.id, row.next_run_at, next, now))
        options.log?.warn({ repository: row.repository, fire: row.next_run_at, next }, "stand-up fire within an hour of the last one skipped");
      continue;
    }
    const done = await inTransaction(db, async (trx) => {
      if (!(await advanceSchedule(trx, row.id, row.next_run_at, next, now))) return false;
      const id = await enqueueJob(
        trx,
        {
          kind: "standup",
          taskId: null,
          installationId: row.installation_id,
          lockKey: standupJobLockKey(row),
          dedupeKey: standupDedupeKey(row.owner, row.repo, row.next_run_at),
          payload: { owner: row.owner, repo: row.repo, installationId: row.installation_id, scheduledFor: row.next_run_at } satisfies StandupPayload,
          maxAttempts: options.maxAttempts ?? 3,
        },
        // Runnable at once: `now` (a fake clock in tests) only decides which schedules are due.
      );
      return id !== null;
    });
    if (done) enqueued += 1;
  }
  return enqueued;
}

/**
 * The lock key of a stand-up job. Before the stand-up issue exists, the repository's stand-up
 * lane ({@link standupLockKey}). Once it exists, the issue's command lane
 * ({@link commandLockKey}) — where `/approve <n>` and `/dismiss <n>` on it run — so the stand-up
 * job and a checklist refresh never interleave. Chosen over re-reading the proposals after the
 * write: a re-read closes only one direction (the stand-up writing back an unticked checklist),
 * not the other (a refresh that read the old body before the stand-up wrote, then writes it
 * back over the new stand-up), and GitHub has no conditional issue update to detect either.
 * The first stand-up needs no such lane: no command can name its issue before it creates it,
 * and after creating it (with its body) it writes the body no more.
 */
function standupJobLockKey(row: { owner: string; repo: string; standup_issue_number: number | null }): string {
  return row.standup_issue_number === null
    ? standupLockKey(row.owner, row.repo)
    : commandLockKey({ owner: row.owner, repo: row.repo, issueNumber: row.standup_issue_number });
}

/**
 * `true` for a GitHub answer saying the app no longer reaches the repository: 401, 403 or 404
 * that is not a rate limit (a rate-limited 403 is `retryable`: the job retries it).
 */
function lostRepository(err: unknown): boolean {
  const { status, retryable } = err as { status?: unknown; retryable?: unknown };
  return (status === 401 || status === 403 || status === 404) && retryable !== true;
}

// ---------------------------------------------------------------------------------------------
// The stand-up job

/**
 * Writes the repository's stand-up for the fire `scheduledFor`: re-reads the config (the
 * stand-up turned off → the schedule is disabled and nothing is written; the app no longer
 * reaches the repository — a 401, 403 or 404 minting the installation token or reading the
 * config, after an uninstall or the repository's removal from the installation — → the
 * schedule is disabled, logged, and the job ends without a retry), reads the facts since
 * the previous stand-up from the store, stores the day's new follow-up proposals, and creates
 * the stand-up issue once (pinned when the app may) or edits it in place. No model is called.
 *
 * @throws {GitHubApiError} of a failed read or write (the job is retried)
 */
export async function runStandupJob(deps: PipelineDeps, job: StandupJob, log: Logger): Promise<JobResult> {
  const { owner, repo, installationId, scheduledFor } = job.data.payload;
  const jobLog = log.child({ repo: `${owner}/${repo}`, standup: scheduledFor });
  const target: RepositoryRef = { installationId, owner, repo };
  let github: GitHubPort;
  let config: RepoConfig | null;
  try {
    github = await deps.github({ installationId, owner, repo, log: jobLog });
    config = await readConfig(github, jobLog);
  } catch (err) {
    if (!lostRepository(err)) throw err;
    // Retrying cannot help (every later fire would fail the same way): stop firing until a
    // delivery shows the app the repository's config again (syncStandupSchedule enables it).
    await disableSchedule(deps.db, target, "standup");
    jobLog.warn({ err, status: (err as { status?: unknown }).status }, "the app no longer reaches the repository: stand-up schedule disabled");
    return {};
  }
  if (!config) return {};
  if (!config.orchestrator.standup) {
    await disableSchedule(deps.db, target, "standup");
    jobLog.info("the stand-up is off in the repository config: schedule disabled");
    return {};
  }
  await syncStandupSchedule(deps.db, target, config);
  const schedule = await findSchedule(deps.db, target, "standup");
  if (!schedule || schedule.disabled_at !== null) return {};
  const timezone = config.orchestrator.standup.timezone;
  const now = Date.now();
  // The first stand-up covers the day before it; later ones start where the previous one ended.
  const from = schedule.last_run_at ?? now - DAY_MS;
  const bot = await github.getBotIdentity();
  const appSlug = bot.login.replace(/\[bot\]$/, "");

  const view = await standupFacts(deps, config, { owner, repo, installationId, from, to: now, exceptIssue: schedule.standup_issue_number });
  const candidates = await proposalCandidates(github, bot.login, view.activityTasks, jobLog);
  const date = localDate(scheduledFor, timezone);
  await addProposals(deps.db, target, candidates, { proposedOn: date, maxPerDay: config.orchestrator.max_proposals, now });
  const proposals = (await proposalsToList(deps.db, target, from)).map(toView);

  const standup: StandupView = { ...view.view, date, timezone, since: from, until: now, proposals, appSlug };
  const body = renderStandup(standup);
  const { issue, created } = await github.ensureIssue({ topic: STANDUP_TOPIC, title: standupTitle(date), body, issueNumber: schedule.standup_issue_number });
  await recordStandupRun(deps.db, schedule.id, now, issue.number);
  if (created) {
    try {
      await github.pinIssue(issue.number);
    } catch (err) {
      // Pinning needs a permission the app may not have (or three issues are pinned already): the stand-up stands without it.
      jobLog.warn({ err, issue: issue.number }, "could not pin the stand-up issue");
    }
  }
  jobLog.info({ issue: issue.number, created, activity: standup.activity.length, proposals: proposals.length }, "stand-up written");
  // The operators' digest channel, when NOTIFICATIONS_FILE routes `daily_digest` somewhere.
  await deps.notifier?.standupWritten(deps.db, {
    installationId,
    event: standupNotice(standup, { repository: `${owner}/${repo}`, issueNumber: issue.number, issueUrl: issue.htmlUrl }),
    routes: config.notifications?.routes,
    now,
  });
  return {};
}

/** The stand-up in a few figures, for the operators' digest channel. */
function standupNotice(
  standup: StandupView,
  subject: { repository: string; issueNumber: number; issueUrl: string },
): Extract<NotificationEvent, { type: "standup" }> {
  const tasksWith = (event: string) => standup.activity.filter((a) => a.events.includes(event)).length;
  return {
    type: "standup",
    subject,
    date: standup.date,
    started: tasksWith("started"),
    prsOpened: tasksWith("pr_opened"),
    merged: tasksWith("merged"),
    failed: tasksWith("failed"),
    waiting: standup.waiting.length,
    proposals: standup.proposals.filter((p) => p.status === "proposed").length,
    spendNanoUsd: standup.spend.reduce((sum, row) => sum + row.cost_nano_usd, 0),
  };
}

/** The repository config for a stand-up, or `null` (logged) when the file is invalid: no stand-up until it is fixed. */
async function readConfig(github: GitHubPort, log: Logger): Promise<RepoConfig | null> {
  let raw: unknown;
  try {
    raw = await github.readConfigFile(REPO_CONFIG_FILE);
  } catch (err) {
    if (typeof (err as { status?: unknown }).status === "number") throw err;
    log.warn({ err }, `unreadable .github/${REPO_CONFIG_FILE}: no stand-up until it is fixed`);
    return null;
  }
  const { config, problems } = parseRepoConfig(raw);
  if (problems.length > 0) {
    log.warn({ problems }, `invalid .github/${REPO_CONFIG_FILE}: no stand-up until it is fixed`);
    return null;
  }
  return config;
}

/** The stand-up's facts from the store, and the tasks whose pull requests the proposals look at. */
async function standupFacts(
  deps: PipelineDeps,
  config: RepoConfig,
  scope: { owner: string; repo: string; installationId: number; from: number; to: number; exceptIssue: number | null },
): Promise<{ view: Omit<StandupView, "date" | "timezone" | "since" | "until" | "proposals" | "appSlug">; activityTasks: Task[] }> {
  const { owner, repo, from, to } = scope;
  const repository = `${owner}/${repo}`;
  const ref: RepositoryRef = { installationId: scope.installationId, owner, repo };
  const activity = await taskActivity(deps.db, ref, from, to, scope.exceptIssue);
  const activityView: StandupActivity[] = [];
  const failures: StandupView["failures"] = [];
  for (const { task, transitions } of activity) {
    const all = await transitionsOf(deps.db, task.id);
    const events = eventsOf(transitions, all);
    if (events.length === 0 && task.stage === "new") continue;
    activityView.push({
      issueNumber: task.issue_number,
      title: task.issue_title ?? "",
      state: task.stage,
      events,
      prNumber: task.pr_number,
      prUrl: task.pr_url,
    });
    const failed = transitions.filter((t) => t.to_state === "failed" || t.to_state === "budget_exceeded").at(-1);
    if (failed)
      failures.push({ issueNumber: task.issue_number, title: task.issue_title ?? "", state: failed.to_state, reason: task.failure_reason ?? failed.reason });
  }
  const waiting: StandupWaiting[] = (await tasksWaitingForPeople(deps.db, ref, scope.exceptIssue)).map((t) => {
    const plan = t.stage === "blocked" && Boolean(t.plan) && !t.pr_number && !t.plan_approved_by;
    return {
      issueNumber: t.issue_number,
      title: t.issue_title ?? "",
      kind: t.stage === "ready_for_merge" ? "merge" : plan ? "plan" : "blocked",
      reason: t.blocked_reason ?? t.failure_reason,
      prNumber: t.pr_number,
      prUrl: t.pr_url,
    };
  });
  const filter = { from, to: to + 1, repositories: [repository] };
  const spend = (await spendTotals(deps.db, filter, "agent")).map((s) => ({ ...s, agent: s.key ?? "(none)" }));
  const limits = mergeLimits(deps.serverLimits, repoBudgetLimits(config.budget, repository));
  const budgets = (await budgetUse(deps.db, { limits, repositories: [repository], installationIds: [scope.installationId], now: to, maxTasks: 5 })).map(
    (b) => ({
      scope: b.scopeLabel,
      period: b.limit.period,
      spentNanoUsd: b.spentNanoUsd,
      limitNanoUsd: b.limitNanoUsd,
      percent: b.percent,
      source: b.limit.source,
    }),
  );
  const stats = await agentStatistics(deps.db, { from: 0, to: to + 1, repositories: [repository] });
  const verdicts = await reviewVerdictCounts(deps.db, owner, repo, { from, to }, scope.installationId);
  return {
    view: { activity: activityView, waiting, failures, spend, budgets, stats, verdicts },
    activityTasks: activity.map((a) => a.task),
  };
}

/**
 * What a task did among `transitions` (the period's): `started` (a run began), `pr_opened` (its
 * first exit from `coding` in the run: the Coder opens the pull request there), `merged`,
 * `ready_for_merge`, `blocked`, `failed`, `budget_exceeded`, `cancelled`.
 */
function eventsOf(transitions: readonly Transition[], all: readonly Transition[]): string[] {
  const events: string[] = [];
  const add = (e: string) => {
    if (!events.includes(e)) events.push(e);
  };
  for (const t of transitions) {
    if (t.to_state === "planning") add("started");
    if (t.from_state === "coding" && isFirstCodingExitOfRun(t, all)) add("pr_opened");
    if (["merged", "ready_for_merge", "blocked", "failed", "budget_exceeded", "cancelled"].includes(t.to_state)) add(t.to_state);
  }
  return events;
}

function isFirstCodingExitOfRun(t: Transition, all: readonly Transition[]): boolean {
  const runStart = all.filter((x) => x.to_state === "planning" && x.id <= t.id).at(-1)?.id ?? 0;
  const first = all.find(
    (x) => x.id >= runStart && x.from_state === "coding" && x.to_state !== "blocked" && x.to_state !== "failed" && x.to_state !== "cancelled",
  );
  return first?.id === t.id;
}

function toView(p: FollowUpProposal): StandupProposal {
  return { number: p.number, title: p.title, status: p.status, sourceKind: p.source_kind, sourceUrl: p.source_url, issueNumber: p.issue_number };
}

// ---------------------------------------------------------------------------------------------
// Proposals

const TODO_LINE = /\b(TODO|FIXME)\b/;

/**
 * Follow-ups seen in the pull requests of the period's tasks (at most
 * {@link MAX_PULL_REQUESTS_READ}): `TODO`/`FIXME` lines the app's pull request added
 * (`GET …/pulls/{n}/files`), the Reviewer's review threads left unresolved on a merged pull
 * request (`GET …/pulls/{n}/comments` and GraphQL `reviewThreads`), and checks that failed and
 * then passed on the same head commit (`GET …/commits/{sha}/check-runs?filter=all`). A source
 * that cannot be read is logged and skipped: proposals never fail the stand-up.
 */
async function proposalCandidates(github: GitHubPort, botLogin: string, tasks: readonly Task[], log: Logger): Promise<ProposalCandidate[]> {
  const candidates: ProposalCandidate[] = [];
  const withPr = tasks.filter((t) => t.pr_number !== null).slice(0, MAX_PULL_REQUESTS_READ);
  for (const task of withPr) {
    const pr = task.pr_number as number;
    const prUrl = task.pr_url ?? "";
    try {
      for (const file of await github.listPullRequestFiles(pr)) {
        for (const line of addedLines(file.patch)) {
          if (!TODO_LINE.test(line)) continue;
          // Redacted before it is cut: a secret split by the cut would no longer match its pattern.
          const text = redactSecrets(line.trim()).slice(0, 200);
          candidates.push({
            fingerprint: fingerprint("todo", file.filename, text.replace(/\s+/g, " ")),
            title: `Follow up a ${TODO_LINE.exec(text)?.[1] ?? "TODO"} in ${file.filename}`,
            body: [
              `Pull request #${pr} of Mission Control added this line to \`${inline(file.filename, 200)}\`:`,
              "",
              `> ${inline(text, 200)}`,
              "",
              `Seen in ${prUrl ? `[#${pr}](${prUrl}/files)` : `#${pr}`} (issue #${task.issue_number}).`,
            ].join("\n"),
            sourceKind: "todo",
            sourceUrl: prUrl ? `${prUrl}/files` : "",
          });
        }
      }
    } catch (err) {
      log.warn({ err, pr }, "could not read the pull request's files for proposals");
    }
    if (task.stage === "merged") {
      try {
        const comments = (await github.listReviewComments(pr)).filter((c) => c.author === botLogin && c.inReplyTo === null);
        if (comments.length > 0) {
          const threads = await github.listReviewThreads(pr);
          for (const c of comments) {
            const thread = threads.find((t) => t.commentIds.includes(c.id));
            if (!thread || thread.isResolved) continue;
            candidates.push({
              fingerprint: fingerprint("review", String(c.id)),
              title: `Review finding left open in ${c.path}${c.line ? `:${c.line}` : ""}`,
              body: [
                `The Reviewer's comment on \`${inline(c.path, 200)}\`${c.line ? ` line ${c.line}` : ""} of #${pr} was not resolved when it was merged:`,
                "",
                `> ${inline(c.body, 600)}`,
              ].join("\n"),
              sourceKind: "review_finding",
              sourceUrl: prUrl ? `${prUrl}#discussion_r${c.id}` : "",
            });
          }
        }
      } catch (err) {
        log.warn({ err, pr }, "could not read the review threads for proposals");
      }
    }
    if (task.head_sha) {
      try {
        const runs = [...(await github.listCheckRunAttempts(task.head_sha))].sort((a, b) => a.id - b.id);
        const names = new Set(runs.map((r) => r.name));
        for (const name of names) {
          const attempts = runs.filter((r) => r.name === name);
          const failed = attempts.findIndex((r) => r.conclusion === "failure" || r.conclusion === "timed_out");
          if (failed < 0 || !attempts.slice(failed + 1).some((r) => r.conclusion === "success")) continue;
          candidates.push({
            fingerprint: fingerprint("flaky", name),
            title: `Flaky check: ${name}`,
            body: [
              `The check \`${inline(name, 200)}\` failed and then passed on the same commit \`${task.head_sha.slice(0, 7)}\` of #${pr}: a flaky test or job.`,
              "",
              `Failed run: ${attempts[failed]?.htmlUrl ?? "(no link)"}`,
            ].join("\n"),
            sourceKind: "flaky_check",
            sourceUrl: attempts[failed]?.htmlUrl ?? "",
          });
        }
      } catch (err) {
        log.warn({ err, pr }, "could not read the check runs for proposals");
      }
    }
  }
  return candidates.filter((c) => /^https?:\/\//.test(c.sourceUrl));
}

/** Lines a unified-diff patch adds (without the `+`). */
function addedLines(patch: string | undefined): string[] {
  if (!patch) return [];
  return patch
    .split("\n")
    .filter((l) => l.startsWith("+") && !l.startsWith("+++"))
    .map((l) => l.slice(1));
}

function fingerprint(...parts: string[]): string {
  return `${parts[0]}:${createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, 32)}`;
}

// ---------------------------------------------------------------------------------------------
// Commands on the stand-up issue

/**
 * `true` when `number` is the repository's stand-up issue — also while the stand-up is off, so
 * `/approve <n>` on it never falls through to plan approval. Pass `installationId` (the task's):
 * without it, a stand-up issue of any installation that had the repository's name counts.
 */
export async function isStandupIssue(db: DbOrTrx, owner: string, repo: string, number: number, installationId?: number): Promise<boolean> {
  return (await standupIssueNumbers(db, owner, repo, installationId)).includes(number);
}

/**
 * `/approve <n>` or `/dismiss <n>` on the stand-up issue. `/approve <n>` opens exactly one issue
 * for proposal `n` (labelled `orchestrator.proposal_label` when set; found again by its marker,
 * so a retried job or a second `/approve <n>` never opens another) and ticks it in the
 * checklist; `/dismiss <n>` marks it dismissed (never proposed again). Other proposals, and
 * `/approve` without a number, are answered with how to use them.
 */
export async function runProposalCommand(
  deps: PipelineDeps,
  github: GitHubPort,
  task: Task,
  payload: CommandJobPayload,
  reply: (topic: string, body: string) => Promise<unknown>,
  log: Logger,
): Promise<JobResult> {
  const name = payload.name === "approve" ? "approve" : "dismiss";
  const match = /^#?(\d{1,6})$/.exec(payload.args.trim());
  if (!match) {
    await reply(name, `Name the proposal: \`/${name} <n>\`, with its number from the checklist above.`);
    return {};
  }
  const n = Number(match[1]);
  const ref: RepositoryRef = { installationId: task.installation_id, owner: task.owner, repo: task.repo };
  const proposal = await findProposal(deps.db, ref, n);
  if (!proposal) {
    await reply(name, `There is no proposal ${n} in this repository.`);
    return {};
  }
  if (proposal.status === "accepted") {
    await reply(name, `Proposal ${n} was already accepted${proposal.issue_number ? `: #${proposal.issue_number}` : ""}.`);
    return {};
  }
  if (proposal.status === "dismissed") {
    await reply(name, `Proposal ${n} was dismissed${proposal.decided_by ? ` by ${inline(proposal.decided_by, 60)}` : ""}; it is not opened.`);
    return {};
  }
  if (name === "dismiss") {
    await decideProposal(deps.db, proposal.id, { status: "dismissed", by: payload.actor });
    await refreshChecklist(deps, github, task, payload.appSlug, log);
    await reply(name, `🗑️ Proposal ${n} dismissed by @${payload.actor}; it will not be proposed again.`);
    return {};
  }
  const config = RepoConfig.parse(JSON.parse(task.config));
  const label = config.orchestrator.proposal_label;
  if (label) await github.ensureLabel(label, "0e8a16", "Follow-up proposed by Mission Control's stand-up");
  const { issue } = await github.ensureIssue({
    topic: `proposal:${proposal.fingerprint}`,
    title: proposal.title,
    body: `${proposal.body}\n\n<sub>Proposed in the stand-up #${task.issue_number} (proposal ${n}), approved by ${inline(`@${payload.actor}`, 60)}.</sub>`,
    issueNumber: proposal.issue_number,
    ...(label ? { labels: [label] } : {}),
  });
  await setProposalIssue(deps.db, proposal.id, issue.number);
  await decideProposal(deps.db, proposal.id, { status: "accepted", by: payload.actor, issueNumber: issue.number });
  await refreshChecklist(deps, github, task, payload.appSlug, log);
  await reply(name, `✅ Proposal ${n} opened as #${issue.number} (approved by @${payload.actor}).`);
  return {};
}

/** Re-renders the proposals checklist in the stand-up issue's body (the app's own issue), in place. */
async function refreshChecklist(deps: PipelineDeps, github: GitHubPort, task: Task, appSlug: string, log: Logger): Promise<void> {
  const ref: RepositoryRef = { installationId: task.installation_id, owner: task.owner, repo: task.repo };
  const schedule = await findSchedule(deps.db, ref, "standup");
  if (!schedule?.standup_issue_number) return;
  const issue = await github.getIssue(schedule.standup_issue_number);
  const bot = await github.getBotIdentity();
  if (issue.author !== bot.login) return;
  const since = schedule.last_run_at ?? Date.now() - DAY_MS;
  // The ones listed at the last stand-up stay listed (now ticked or struck through).
  const proposals = (await proposalsToList(deps.db, ref, Math.min(since, Date.now() - DAY_MS))).map(toView);
  const body = replaceProposals(issue.body, renderProposals(proposals, appSlug));
  if (body === issue.body) {
    log.debug("stand-up checklist unchanged");
    return;
  }
  await github.updateIssue(issue.number, { body });
}

/**
 * Per-role agent statistics of a repository (all time) with the Reviewer's verdicts, for `/report`.
 */
export async function renderRepositoryAgentStatistics(db: Db, owner: string, repo: string, now = Date.now()): Promise<string> {
  const stats = await agentStatistics(db, { from: 0, to: now + 1, repositories: [`${owner}/${repo}`] });
  const verdicts = await reviewVerdictCounts(db, owner, repo);
  return renderAgentStatistics(stats, verdicts, `**Agents in ${inline(`${owner}/${repo}`, 100)}** (all tasks)`);
}
