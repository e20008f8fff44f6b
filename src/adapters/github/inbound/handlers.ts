import type { Logger } from "pino";
import type { Context } from "probot";

import { parseRepoConfig, REPO_CONFIG_FILE, type RepoConfig } from "../config/repo-config.js";
import type { CommandJobPayload } from "../jobs/commands.js";
import { cancelTaskJobs } from "../jobs/commands.js";
import { canTransition, isTaskState, RESTARTABLE_STATES } from "../jobs/lifecycle.js";
import { issueClosedNote, lockKeyFor, setTrackingNote, type StageJobPayload, type StageKind, TRACKING_NOTE } from "../jobs/pipeline.js";
import { enqueueJob } from "../jobs/queue.js";
import type { Db } from "../ledger/db.js";
import type { Task } from "../ledger/schema.js";
import { COMMAND_HELP, parseCommand } from "./commands.js";
import { canWrite, isBot } from "./guards.js";

/** What the webhook handlers need: the database, and a way to wake the worker. */
export interface EventDeps {
  db: Db;
  log: Logger;
  maxAttempts: number;
  /** The app's slug, for `@<slug> command` mentions (resolved once at start-up). */
  appSlug(): Promise<string>;
  /** Called after a job was enqueued. */
  onEnqueued(): void;
}

/** Why a delivery did or did not start work; logged, and returned for tests. */
export type TriggerOutcome =
  | "enqueued"
  | "duplicate_delivery"
  | "sender_is_bot"
  | "not_trigger_label"
  | "pull_request"
  | "issue_closed"
  | "no_permission"
  | "already_running"
  | "not_a_command"
  | "no_task"
  | "ignored";

type IssueTriggerContext = Context<"issues.labeled"> | Context<"issues.opened">;

interface Subject {
  deliveryId: string;
  event: string;
  installationId: number;
  owner: string;
  repo: string;
  number: number;
}

/** The fields every handled delivery shares: delivery id, event, installation, repository, number. */
function subjectOf(
  context: { id: string; name: string; payload: { action?: string; installation?: { id: number }; repository: { owner: { login: string }; name: string } } },
  number: number,
): Subject {
  const { payload } = context;
  return {
    deliveryId: context.id,
    event: `${context.name}.${payload.action ?? ""}`,
    installationId: payload.installation?.id ?? 0,
    owner: payload.repository.owner.login,
    repo: payload.repository.name,
    number,
  };
}

/** Logs a handler's outcome and wakes the worker when it enqueued work. */
function finish(deps: EventDeps, s: Subject, outcome: TriggerOutcome, message: string, fields: Record<string, unknown> = {}): TriggerOutcome {
  logFor(deps, s).info({ outcome, ...fields }, message);
  if (outcome === "enqueued") deps.onEnqueued();
  return outcome;
}

function logFor(deps: EventDeps, s: Subject): Logger {
  return deps.log.child({ deliveryId: s.deliveryId, repo: `${s.owner}/${s.repo}`, issue: s.number, event: s.event });
}

async function seen(db: Db, deliveryId: string): Promise<boolean> {
  return Boolean(await db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", deliveryId).executeTakeFirst());
}

/** Records the delivery and runs `body` in one transaction; a second delivery with the same id does nothing. */
async function oncePerDelivery(db: Db, s: Subject, body: (trx: Db) => Promise<TriggerOutcome>): Promise<TriggerOutcome> {
  return db.transaction().execute(async (trx) => {
    const inserted = await trx
      .insertInto("deliveries")
      .values({ delivery_id: s.deliveryId, event: s.event, received_at: Date.now() })
      .onConflict((oc) => oc.column("delivery_id").doNothing())
      .executeTakeFirst();
    if (inserted.numInsertedOrUpdatedRows === 0n) return "duplicate_delivery";
    return body(trx as unknown as Db);
  });
}

async function findTask(db: Db, owner: string, repo: string, where: { issue?: number; pr?: number }): Promise<Task | undefined> {
  let query = db.selectFrom("tasks").selectAll().where("owner", "=", owner).where("repo", "=", repo);
  if (where.issue !== undefined) query = query.where("issue_number", "=", where.issue);
  if (where.pr !== undefined) query = query.where("pr_number", "=", where.pr);
  return query.orderBy("id", "desc").executeTakeFirst();
}

async function enqueueStage(trx: Db, deps: EventDeps, task: Pick<Task, "id" | "run" | "installation_id" | "owner" | "repo" | "issue_number">, kind: StageKind, payload: StageJobPayload & Record<string, unknown>, deliveryId: string): Promise<void> {
  await enqueueJob(trx, {
    kind,
    taskId: task.id,
    installationId: task.installation_id,
    lockKey: lockKeyFor(task.owner, task.repo, task.issue_number),
    dedupeKey: `task:${task.id}:run:${task.run}:${kind}:delivery-${deliveryId}`,
    deliveryId,
    payload,
    maxAttempts: deps.maxAttempts,
  });
}

/**
 * Reads `.github/mission-control.yml` from the default branch through Probot's config plugin
 * (`GET /repos/{owner}/{repo}/contents/.github/mission-control.yml`).
 *
 * An invalid file — YAML that does not parse, or a key the schema refuses — is **not** used:
 * the result carries its problems, the caller stores them with the task, and every stage that
 * would call a model stops first (`blocked`, the problems posted once on the issue). The config
 * returned alongside is the defaults with the file's `trigger_label` when that key is valid.
 *
 * @throws the HTTP error of a failed read (5xx, rate limit): the delivery fails and GitHub may redeliver it
 */
async function readRepoConfig(context: Pick<Context, "config">, log: Logger): Promise<{ config: RepoConfig; problems: string[] }> {
  let raw: unknown;
  try {
    raw = await context.config<Record<string, unknown>>(REPO_CONFIG_FILE);
  } catch (err) {
    // Probot's config plugin throws on YAML it cannot parse; transient HTTP errors still propagate.
    if (typeof (err as { status?: unknown }).status === "number") throw err;
    log.warn({ err }, `unreadable .github/${REPO_CONFIG_FILE}; work stops until it is fixed`);
    return { config: parseRepoConfig(null).config, problems: [`the file is not valid YAML: ${(err as Error).message.slice(0, 200)}`] };
  }
  const result = parseRepoConfig(raw);
  if (result.problems.length > 0) log.warn({ problems: result.problems }, `invalid .github/${REPO_CONFIG_FILE}; work stops until it is fixed`);
  return result;
}

async function senderCanWrite(context: Context, owner: string, repo: string, login: string): Promise<boolean> {
  const { data } = await context.octokit.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", { owner, repo, username: login });
  return canWrite(data);
}

/**
 * `issues.labeled` with the trigger label, or `issues.opened` already carrying it: guard,
 * then enqueue the first job of a run. No agent runs here — the handler answers GitHub
 * quickly and the worker does the work.
 *
 * Guards, cheapest first: redelivery (local), bot sender (local), trigger label (repository
 * config, read from the default branch), sender's permission (one REST call).
 *
 * The issue's title and body from the delivery (the issue as the maintainer labelled it) are
 * stored on the task; an invalid repository config is stored as problems, and the run stops
 * before any model call (see {@link readRepoConfig}).
 */
export async function handleIssueTrigger(context: IssueTriggerContext, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const repository = payload.repository;
  const issue = payload.issue;
  const s = subjectOf(context, issue.number);
  const log = logFor(deps, s);
  return finish(deps, s, await decide(), "issue trigger handled");

  async function decide(): Promise<TriggerOutcome> {
    if (await seen(deps.db, s.deliveryId)) return "duplicate_delivery";
    if (isBot(payload.sender)) return "sender_is_bot";
    if ((issue as { pull_request?: unknown }).pull_request) return "pull_request";
    if (issue.state === "closed") return "issue_closed";
    // Cheap local checks before any REST call: our own stage labels, and new issues without labels.
    if (payload.action === "labeled" && payload.label?.name.startsWith("mc:")) return "not_trigger_label";
    if (payload.action === "opened" && (issue.labels ?? []).length === 0) return "not_trigger_label";
    if (!s.installationId) throw new Error("the delivery has no installation id");

    const { config, problems } = await readRepoConfig(context, log);
    const labelled =
      payload.action === "labeled"
        ? payload.label?.name === config.trigger_label
        : (issue.labels ?? []).some((l) => l.name === config.trigger_label);
    if (!labelled) return "not_trigger_label";
    if (!(await senderCanWrite(context, s.owner, s.repo, payload.sender.login))) return "no_permission";

    const now = Date.now();
    return oncePerDelivery(deps.db, s, async (trx) => {
      const existing = await findTask(trx, s.owner, s.repo, { issue: issue.number });
      if (existing && isTaskState(existing.stage) && !RESTARTABLE_STATES.has(existing.stage)) return "already_running";
      const fields = {
        installation_id: s.installationId,
        stage: existing?.stage ?? "new",
        triggered_by: payload.sender.login,
        triggered_by_id: payload.sender.id,
        clone_url: repository.clone_url,
        default_branch: repository.default_branch,
        config: JSON.stringify(config),
        // Fail closed: with problems, the first stage posts them and waits in `blocked` before any model call.
        config_problems: problems.length > 0 ? JSON.stringify(problems) : null,
        // What the maintainer saw when labelling: the agents read this copy, never a later edit.
        issue_title: issue.title,
        issue_body: issue.body ?? "",
        tracking_notes: null,
        plan: null,
        branch: null,
        pr_number: null,
        pr_url: null,
        head_sha: null,
        review_url: null,
        review_verdict: null,
        reviewed_sha: null,
        tests_conclusion: null,
        failure_reason: null,
        blocked_reason: null,
        approved_by: null,
        plan_approved_by: null,
        rework_cycles: 0,
        started_at: now,
        finished_at: null,
        updated_at: now,
      };
      const task = existing
        ? await trx.updateTable("tasks").set({ ...fields, run: existing.run + 1 }).where("id", "=", existing.id).returningAll().executeTakeFirstOrThrow()
        : await trx
            .insertInto("tasks")
            .values({ ...fields, owner: s.owner, repo: s.repo, issue_number: issue.number, run: 1, created_at: now })
            .returningAll()
            .executeTakeFirstOrThrow();
      await enqueueStage(trx, deps, task, "plan", { triggeredAt: new Date(now).toISOString(), actor: payload.sender.login }, s.deliveryId);
      return "enqueued";
    });
  }
}

/**
 * An issue closed by a person. Only a closer with write, maintain or admin permission
 * (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`) cancels the run: running and
 * queued jobs are cancelled and the task ends `cancelled`. An issue closed by merging the app's
 * pull request is left to `pull_request.closed` (→ `merged`). Anyone else's close — the issue's
 * author only needs read permission — does not stop the run: a note in the tracking comment says
 * who closed it, that the run continues, and that a maintainer stops it with `/stop`.
 */
export async function handleIssueClosed(context: Context<"issues.closed">, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.issue.number);
  if (isBot(payload.sender)) return "sender_is_bot";
  if (await seen(deps.db, s.deliveryId)) return finish(deps, s, "duplicate_delivery", "issue closed handled");
  const current = await findTask(deps.db, s.owner, s.repo, { issue: s.number });
  if (!current || ["merged", "cancelled"].includes(current.stage)) return finish(deps, s, "no_task", "issue closed handled");
  // A merged PR that closes the issue is handled by pull_request.closed.
  if (current.stage === "ready_for_merge") return finish(deps, s, "ignored", "issue closed handled");
  const closer = payload.sender.login;
  const writer = await senderCanWrite(context, s.owner, s.repo, closer);
  if (!writer && current.pr_number && (await pullRequestMerged(context, s.owner, s.repo, current.pr_number))) {
    return finish(deps, s, "ignored", "issue closed by merging the app's pull request");
  }
  const outcome = await oncePerDelivery(deps.db, s, async (trx) => {
    const task = await findTask(trx, s.owner, s.repo, { issue: s.number });
    if (!task || ["merged", "cancelled"].includes(task.stage)) return "no_task";
    if (task.stage === "ready_for_merge") return "ignored";
    if (!writer) {
      await setTrackingNote(trx, task.id, TRACKING_NOTE.issueClosed, issueClosedNote(closer));
      // Re-rendered in the command lane, so the note shows while a stage runs.
      await enqueueJob(trx, {
        kind: "tracking",
        taskId: task.id,
        installationId: task.installation_id,
        lockKey: `cmd:${lockKeyFor(task.owner, task.repo, task.issue_number)}`,
        dedupeKey: `delivery:${s.deliveryId}:tracking`,
        deliveryId: s.deliveryId,
        payload: { actor: closer },
        maxAttempts: deps.maxAttempts,
      });
      return "no_permission";
    }
    await cancelTaskJobs({ db: trx }, task.id);
    await enqueueStage(trx, deps, task, "cancel", { actor: closer, reason: `The issue was closed by @${closer}.` }, s.deliveryId);
    return "enqueued";
  });
  if (outcome === "no_permission") {
    deps.onEnqueued();
    return finish(deps, s, outcome, "issue closed by someone without write permission: the run continues", { closer });
  }
  return finish(deps, s, outcome, "issue closed handled");
}

/** `true` when pull request `number` is merged (`GET /repos/{owner}/{repo}/pulls/{pull_number}`). */
async function pullRequestMerged(context: Context, owner: string, repo: string, number: number): Promise<boolean> {
  try {
    const { data } = await context.octokit.request("GET /repos/{owner}/{repo}/pulls/{pull_number}", { owner, repo, pull_number: number });
    return Boolean(data.merged);
  } catch (err) {
    if ((err as { status?: number }).status === 404) return false;
    throw err;
  }
}

/** The app's pull request merged (→ merged) or closed unmerged (→ cancelled). */
export async function handlePullRequestClosed(context: Context<"pull_request.closed">, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.pull_request.number);
  const outcome = await oncePerDelivery(deps.db, s, async (trx) => {
    const task = await findTask(trx, s.owner, s.repo, { pr: s.number });
    if (!task) return "no_task";
    await cancelTaskJobs({ db: trx }, task.id);
    await enqueueStage(trx, deps, task, "pr_closed", { actor: payload.sender.login, merged: Boolean(payload.pull_request.merged) }, s.deliveryId);
    return "enqueued";
  });
  return finish(deps, s, outcome, "pull request closed handled");
}

/**
 * A person's review on the app's pull request: REQUEST_CHANGES, or a comment review with a
 * body or inline comments, starts a Coder revision. Approvals and bots' reviews do not.
 */
export async function handleReviewSubmitted(context: Context<"pull_request_review.submitted">, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.pull_request.number);
  const log = logFor(deps, s);
  if (await seen(deps.db, s.deliveryId)) return "duplicate_delivery";
  if (isBot(payload.sender)) return "sender_is_bot";
  const state = payload.review.state.toLowerCase();
  if (!["changes_requested", "commented", "approved"].includes(state)) return "ignored";
  const task = await findTask(deps.db, s.owner, s.repo, { pr: s.number });
  // Only the app's own pull requests (they have a plan) are revised or merged by it.
  if (!task || !task.plan) return "no_task";
  const config = JSON.parse(task.config) as RepoConfig;
  if (state === "approved" && !(config.auto_merge && task.stage === "ready_for_merge")) return "ignored";
  if (state !== "approved" && !isTaskState(task.stage)) return "ignored";
  if (state !== "approved" && isTaskState(task.stage) && !canTransition(task.stage, "changes_requested") && task.stage !== "changes_requested") return "ignored";
  if (!(await senderCanWrite(context, s.owner, s.repo, payload.sender.login))) return "no_permission";
  const outcome = await oncePerDelivery(deps.db, s, async (trx) => {
    if (state === "approved") {
      await enqueueStage(trx, deps, task, "merge", { actor: payload.sender.login }, s.deliveryId);
      return "enqueued";
    }
    await enqueueStage(
      trx,
      deps,
      task,
      "revise",
      { actor: payload.sender.login, feedback: { source: "review", reviewId: payload.review.id, requestedBy: payload.sender.login } },
      s.deliveryId,
    );
    return "enqueued";
  });
  return finish(deps, s, outcome, "review handled", { review: payload.review.id });
}

/**
 * A new comment whose first line is a slash-command (or `@<slug> command`): permission check,
 * an 👀 reaction at once, then a `command` job. Unknown or malformed commands get the help.
 * Edited comments never re-trigger (only `issue_comment.created` is handled).
 */
export async function handleComment(context: Context<"issue_comment.created">, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.issue.number);
  const log = logFor(deps, s);
  if (await seen(deps.db, s.deliveryId)) return "duplicate_delivery";
  if (isBot(payload.sender)) return "sender_is_bot";
  const slug = await deps.appSlug();
  const parsed = parseCommand(payload.comment.body ?? "", slug);
  if (!parsed) return "not_a_command";
  if (!(await senderCanWrite(context, s.owner, s.repo, payload.sender.login))) {
    log.info({ sender: payload.sender.login }, "command from a sender without write permission ignored");
    return "no_permission";
  }
  const name = parsed.kind === "command" ? parsed.name : "help";
  const args = parsed.kind === "command" ? parsed.args : "";
  let orgOwner = false;
  if (name === "stop" && args === "all") {
    orgOwner = await isOrganisationOwner(context, s.owner, payload.sender.login);
    if (!orgOwner) {
      await context.octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { owner: s.owner, repo: s.repo, comment_id: payload.comment.id, content: "confused" });
      return "no_permission";
    }
  } else if (name === "retry") {
    orgOwner = await isOrganisationOwner(context, s.owner, payload.sender.login);
  }
  await context.octokit.request("POST /repos/{owner}/{repo}/issues/comments/{comment_id}/reactions", { owner: s.owner, repo: s.repo, comment_id: payload.comment.id, content: "eyes" });

  const isPullRequest = Boolean((payload.issue as { pull_request?: unknown }).pull_request);
  const { config, problems } = await readRepoConfig(context, log);
  const now = Date.now();
  const outcome = await oncePerDelivery(deps.db, s, async (trx) => {
    let task = (isPullRequest ? await findTask(trx, s.owner, s.repo, { pr: s.number }) : undefined) ?? (await findTask(trx, s.owner, s.repo, { issue: s.number }));
    if (!task) {
      task = await trx
        .insertInto("tasks")
        .values({
          installation_id: s.installationId,
          owner: s.owner,
          repo: s.repo,
          issue_number: s.number,
          run: 1,
          stage: "new",
          triggered_by: payload.sender.login,
          triggered_by_id: payload.sender.id,
          clone_url: payload.repository.clone_url,
          default_branch: payload.repository.default_branch,
          config: JSON.stringify(config),
          config_problems: problems.length > 0 ? JSON.stringify(problems) : null,
          pr_number: isPullRequest ? s.number : null,
          created_at: now,
          updated_at: now,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
    }
    // Commands that (re)start work use the repository config as it is now on the default branch.
    if (["plan", "code", "retry", "approve", "test", "review"].includes(name)) {
      task = await trx
        .updateTable("tasks")
        .set({ config: JSON.stringify(config), config_problems: problems.length > 0 ? JSON.stringify(problems) : null, updated_at: now })
        .where("id", "=", task.id)
        .returningAll()
        .executeTakeFirstOrThrow();
    }
    const jobPayload: CommandJobPayload = {
      name,
      args,
      commentId: payload.comment.id,
      subjectNumber: s.number,
      isPullRequest,
      actor: payload.sender.login,
      actorIsOrgOwner: orgOwner,
      appSlug: slug,
      triggeredAt: new Date(now).toISOString(),
      // The issue as the maintainer saw it when commenting (not a pull request's title and body):
      // `/plan`, `/code` and `/retry` store it on the task when they start work.
      issue: isPullRequest ? null : { title: payload.issue.title, body: payload.issue.body ?? "" },
    };
    await enqueueJob(trx, {
      kind: "command",
      taskId: task.id,
      installationId: s.installationId,
      lockKey: `cmd:${lockKeyFor(s.owner, s.repo, task.issue_number)}`,
      dedupeKey: `delivery:${s.deliveryId}:command`,
      deliveryId: s.deliveryId,
      payload: jobPayload,
      maxAttempts: deps.maxAttempts,
    });
    return "enqueued";
  });
  return finish(deps, s, outcome, "command handled", { command: name, known: parsed.kind === "command" });
}

/** `true` when `login` is an owner (admin) of the organisation `org` (`GET /orgs/{org}/memberships/{username}`). */
async function isOrganisationOwner(context: Context, org: string, login: string): Promise<boolean> {
  try {
    const { data } = await context.octokit.request("GET /orgs/{org}/memberships/{username}", { org, username: login });
    return data.role === "admin" && data.state === "active";
  } catch (err) {
    if ((err as { status?: number }).status === 404) return false;
    throw err;
  }
}

/** The commands' permission table, re-exported for the README generator and tests. */
export { COMMAND_HELP };
