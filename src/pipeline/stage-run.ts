import { sql } from "kysely";
import type { Logger } from "pino";

import { type Plan, planIssue, renderPlanMarkdown, snapshotRepository } from "../agents/architect.js";
import { branchName, implementIssue, pullRequestBody, replyToRevision, type RevisionFeedback } from "../agents/coder.js";
import type { AgentRuntime, IssueForPrompt } from "../agents/context.js";
import { renderDiff, reviewPullRequest } from "../agents/reviewer.js";
import { type SandboxRunner, testPullRequest } from "../agents/tester.js";
import { RepoConfig } from "../config/repo-config.js";
import { isMissionControlError } from "../errors.js";
import { canWrite } from "../github/guards.js";
import { ensureComment, STAGE_LABEL_PREFIX } from "../github/output/ensure.js";
import type { BotIdentity, GitHubPort, IssueData, PullRequestData, ReviewData } from "../github/output/port.js";
import { commentsForPrompt, sanitizeUntrustedText } from "../github/sanitize.js";
import type { BudgetAlert, BudgetLimit } from "../ledger/budgets.js";
import type { Db } from "../ledger/db.js";
import type { Job, Task, TaskUpdate } from "../ledger/schema.js";
import { usageTotalsForTask } from "../ledger/usage.js";
import type { Llm } from "../llm/client.js";
import type { CloneOptions, GitSettings, GitWorkspace } from "../workspace/git.js";
import { removeWorkspace } from "../workspace/git.js";
import { parseTestCounts, detectTestCommand } from "../workspace/test-command.js";
import { prepareWorkspace, pruneWorkspaces, removeIssueWorkspaces, workspaceDir } from "../workspace/workspaces.js";
import { canTransition, isTaskState, STATE_LABELS, stateLabel, type TaskState, transition } from "./lifecycle.js";
import type { JobSpec } from "./queue.js";
import { jobPayload } from "./queue.js";
import { renderTrackingComment } from "./tracking-comment.js";

/** Who the ledger charges a call to, and where budget alerts go. */
export interface UsageContext {
  installationId: number;
  repository: string;
  subjectNumber: number;
  taskId: number;
  jobId: number;
  agent: string;
  /** The task's repository config (its budget section adds or lowers limits). */
  config: RepoConfig;
  /** Posts a budget alert on the issue (once per scope and period: the ledger dedupes). */
  onAlert(alert: BudgetAlert): Promise<void>;
}

/** Everything the stages need, injected by the app (and by tests). */
export interface PipelineDeps {
  db: Db;
  /** The GitHub port for one installation and repository; `log` (the job's) also logs its requests. */
  github(target: { installationId: number; owner: string; repo: string; log?: Logger }): Promise<GitHubPort>;
  /** A Messages API client that checks budgets and records each call's usage against `context`. */
  llm(context: UsageContext): Llm;
  /** Clones a repository (mirror on the host, work tree in the sandbox), with {@link PipelineDeps.git}'s settings. */
  clone(options: Omit<CloneOptions, "settings">): Promise<GitWorkspace>;
  /** How git and its sandbox run (`workspace/git.ts`). */
  git: GitSettings;
  /** A sandbox runner for a clone (`workspace/sandbox.ts`). */
  sandbox(root: string): SandboxRunner;
  /** Root folder of the clones, and the most bytes they may take together. */
  workspacesDir: string;
  workspacesMaxBytes: number;
  /** The model of an agent when the repository config names none. */
  defaultModel: string;
  /** Attempts of each follow-up job. */
  maxAttempts: number;
  /** Server ceilings of the Coder's limits. */
  coderCeilings: { maxTurns: number; maxMinutes: number; maxOutputTokens: number };
  /** SANDBOX_SETUP_NETWORK=on: the repository's setup command may use the network. */
  allowSetupNetwork: boolean;
  /** Budget limits from the server environment (the ceilings), as enforced by the metered LLM. */
  serverLimits: readonly BudgetLimit[];
}

/** Payload of a job that starts or continues a run. */
export interface StageJobPayload {
  /** ISO time the trigger arrived: comments edited after it are not trusted. */
  triggeredAt?: string;
  /** Who asked (GitHub login); the app itself is `mission-control`. */
  actor?: string;
  /** For `revise`: what to address. */
  feedback?: { source: RevisionFeedback["source"]; text?: string; reviewId?: number; requestedBy: string };
  /** A maintainer's notes from `/plan <notes>` or `/code <instructions>` (untrusted; sanitised before use). */
  notes?: string;
}

/** What a finished stage asks the worker to do next. */
export interface StageOutcome {
  next?: JobSpec;
}

/** The actor name of the app's own transitions. */
export const APP_ACTOR = "mission-control";

/** The lock key shared by every job of one issue. */
export function lockKeyFor(owner: string, repo: string, issueNumber: number): string {
  return `${owner}/${repo}#${issueNumber}`;
}

/**
 * Job kinds of the pipeline. `tracking` only re-renders the tracking comment (enqueued in the
 * command lane by a webhook handler that added a note, so it shows while a stage runs).
 */
export const STAGE_KINDS = ["plan", "code", "revise", "test", "review", "merge", "pr_closed", "cancel", "tracking"] as const;
export type StageKind = (typeof STAGE_KINDS)[number];

export function isStageKind(kind: string): kind is StageKind {
  return (STAGE_KINDS as readonly string[]).includes(kind);
}

/** Builds the next job of a task. `nonce` separates repeated stages (revisions, retries). */
export function nextJob(deps: Pick<PipelineDeps, "maxAttempts">, task: Task, kind: StageKind, payload: StageJobPayload, nonce: string, deliveryId: string | null): JobSpec {
  return {
    kind,
    taskId: task.id,
    installationId: task.installation_id,
    lockKey: lockKeyFor(task.owner, task.repo, task.issue_number),
    dedupeKey: `task:${task.id}:run:${task.run}:${kind}:${nonce}`,
    deliveryId,
    payload,
    maxAttempts: deps.maxAttempts,
  };
}

/**
 * Runs one job of an issue's pipeline — plan → code → test → review, with revisions after
 * failing tests or requested changes — and says which job comes next. Each stage is
 * idempotent: what it already wrote to GitHub (found by marker, branch, head sha or the ids on
 * the task) is reused, so a retried or resumed job never writes twice.
 *
 * @throws whatever the stage threw; the worker decides retry or failure
 */
export async function runStage(deps: PipelineDeps, job: Job, signal: AbortSignal, log: Logger): Promise<StageOutcome> {
  if (!isStageKind(job.kind)) throw new Error(`unknown job kind "${job.kind}"`);
  const task = await loadTask(deps.db, job.task_id);
  const github = abortable(await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log }), signal);
  const run = new StageRun(deps, job, task, github, signal, log);
  return run.execute(job.kind);
}

/**
 * The port with every call refused once `signal` aborted: a job whose lease was lost, or that
 * was stopped, makes no further write to GitHub even if its code is still running.
 */
export function abortable(github: GitHubPort, signal: AbortSignal): GitHubPort {
  return new Proxy(github, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        signal.throwIfAborted();
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

/**
 * Finalises a task whose job failed for good: the state (`failed`, or `budget_exceeded` /
 * `blocked` for a budget stop or a pause), its label, and the tracking comment with the
 * reason — never a spinner left behind.
 */
export async function failTask(deps: PipelineDeps, job: Job, reason: string, error: unknown, log: Logger): Promise<void> {
  try {
    const task = await loadTask(deps.db, job.task_id);
    const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log });
    const code = isMissionControlError(error) ? error.code : "internal";
    const to: TaskState = code === "budget_exceeded" ? "budget_exceeded" : code === "paused" ? "blocked" : "failed";
    const stoppedIn = isTaskState(task.stage) ? task.stage : null;
    const moved = await transition(deps.db, task.id, to, { reason, actor: APP_ACTOR }).catch(async (err: unknown) => {
      log.error({ err }, "illegal transition while failing the task; recording the failure anyway");
      return updateTask(deps.db, task.id, {});
    });
    const updated = await updateTask(deps.db, moved.id, { failure_reason: reason, blocked_reason: to === "blocked" ? reason : null });
    // Label the state the task is really in (the transition may have been refused).
    if (isTaskState(updated.stage)) await applyStateLabel(github, updated.issue_number, updated.stage);
    await writeTracking(deps.db, github, updated, stoppedIn);
    if (to === "budget_exceeded") {
      await github.createComment(updated.issue_number, `⛔ **Budget limit reached.** ${reason}\n\nComment \`/retry\` once the limit is raised or the period has rolled over.`);
    }
  } catch (err) {
    log.error({ err }, "could not report the failure on GitHub");
  }
}

export async function loadTask(db: Db, taskId: number): Promise<Task> {
  return db.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirstOrThrow();
}

export async function updateTask(db: Db, taskId: number, update: TaskUpdate): Promise<Task> {
  return db
    .updateTable("tasks")
    .set({ ...update, updated_at: Date.now() })
    .where("id", "=", taskId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Puts the state's `mc:` label on the issue (created with its colour and description when the
 * repository lacks it) and removes every other `mc:` label: exactly one at a time.
 *
 * @returns the issue as `GET /repos/{owner}/{repo}/issues/{issue_number}` answered before the
 *   labels changed (the stages compare its title and body with the task's stored copy)
 */
export async function applyStateLabel(github: GitHubPort, issueNumber: number, state: TaskState): Promise<IssueData> {
  const label = stateLabel(state);
  const { color, description } = STATE_LABELS[state];
  await github.ensureLabel(label, color, description);
  const issue = await github.getIssue(issueNumber);
  const labels = issue.labels;
  if (!labels.includes(label)) await github.addLabels(issueNumber, [label]);
  for (const other of labels) {
    if (other !== label && other.startsWith(STAGE_LABEL_PREFIX)) await github.removeLabel(issueNumber, other);
  }
  return issue;
}

/** Keys of the tracking comment's notes (`tasks.tracking_notes`). */
export const TRACKING_NOTE = {
  /** The issue's title or body changed after the trigger; the edit is ignored. */
  issueEdited: "issue-edited",
  /** Someone without write permission closed the issue; the run goes on. */
  issueClosed: "issue-closed",
} as const;

/** The notes stored on a task (`tasks.tracking_notes`), by key, in the order they were added. */
export function trackingNotesOf(task: Pick<Task, "tracking_notes">): Record<string, string> {
  if (!task.tracking_notes) return {};
  try {
    const parsed: unknown = JSON.parse(task.tracking_notes);
    return parsed && typeof parsed === "object" && !Array.isArray(parsed) ? (parsed as Record<string, string>) : {};
  } catch {
    return {};
  }
}

/**
 * Stores the tracking comment's note `key` on the task in one UPDATE (SQLite `json_set`, or
 * `json_insert` when `replace` is false, so concurrent writers never lose each other's notes).
 * The tracking comment shows it from its next render on.
 *
 * @param text - Markdown written by the app (never untrusted text: logins only)
 * @returns `true` when the note was added or changed, `false` when it was already there
 */
export async function setTrackingNote(db: Db, taskId: number, key: string, text: string, options: { replace?: boolean } = {}): Promise<boolean> {
  const path = `$."${key.replace(/[^a-z0-9-]/gi, "")}"`;
  const write = options.replace === false ? sql.raw("json_insert") : sql.raw("json_set");
  const guard = options.replace === false ? sql<boolean>`json_extract(coalesce(tracking_notes, '{}'), ${path}) is null` : sql<boolean>`json_extract(coalesce(tracking_notes, '{}'), ${path}) is not ${text}`;
  const result = await db
    .updateTable("tasks")
    .set({ tracking_notes: sql<string>`${write}(coalesce(tracking_notes, '{}'), ${path}, ${text})`, updated_at: Date.now() })
    .where("id", "=", taskId)
    .where(guard)
    .executeTakeFirst();
  return result.numUpdatedRows > 0n;
}

/** Removes the tracking comment's note `key` from the task (one UPDATE with `json_remove`). */
export async function clearTrackingNote(db: Db, taskId: number, key: string): Promise<void> {
  const path = `$."${key.replace(/[^a-z0-9-]/gi, "")}"`;
  await db
    .updateTable("tasks")
    .set({ tracking_notes: sql<string>`json_remove(tracking_notes, ${path})` })
    .where("id", "=", taskId)
    .where("tracking_notes", "is not", null)
    .execute();
}

/** The note shown when the issue's title or body changed after the trigger. */
export function issueEditedNote(triggeredBy: string): string {
  return (
    `✏️ The issue's title or body was edited after @${triggeredBy} started this run. The edit is ignored: every agent works ` +
    "from the text as it was when the work was triggered. To work from the new text, a maintainer comments `/plan` (a new run, from a new plan)."
  );
}

/** The note shown when someone without write permission closed the issue. */
export function issueClosedNote(closer: string): string {
  return (
    `🔒 The issue was closed by @${closer}, who has no write permission on the repository, so the run continues. ` +
    "A maintainer stops it with `/stop`."
  );
}

/** Problems of an invalid repository config stored on the task (`tasks.config_problems`). */
export function configProblemsOf(task: Pick<Task, "config_problems">): string[] {
  if (!task.config_problems) return [];
  try {
    const parsed: unknown = JSON.parse(task.config_problems);
    return Array.isArray(parsed) ? parsed.map(String) : [];
  } catch {
    return ["the stored problems could not be read"];
  }
}

/** The body (without its marker) of the one comment that lists an invalid config's problems. */
export function renderConfigProblems(problems: readonly string[], defaultBranch: string): string {
  return [
    "⛔ `.github/mission-control.yml` is invalid, so Mission Control stopped before any model call or repository command: " +
      "the limits and budgets it sets cannot be trusted until the file validates.",
    "",
    ...problems.map((p) => `- \`${p.replace(/`/g, "'")}\``),
    "",
    `Fix the file on the default branch (\`${defaultBranch}\`), then comment \`/retry\`. The server's own limits apply as always.`,
  ].join("\n");
}

/** Creates or edits the task's tracking comment from its current state. */
export async function writeTracking(db: Db, github: GitHubPort, task: Task, stoppedIn: TaskState | null = null): Promise<Task> {
  const usage = await usageTotalsForTask(db, task.id);
  const state = isTaskState(task.stage) ? task.stage : "planning";
  let stopped = stoppedIn;
  if (!stopped && ["blocked", "failed", "budget_exceeded", "cancelled"].includes(state)) {
    const last = await db
      .selectFrom("transitions")
      .select("from_state")
      .where("task_id", "=", task.id)
      .where("to_state", "=", state)
      .orderBy("id", "desc")
      .executeTakeFirst();
    stopped = isTaskState(last?.from_state) ? last.from_state : null;
  }
  // Notes are read from the database, not `task`: a webhook handler may have added one since `task` was loaded.
  const fresh = await db.selectFrom("tasks").select("tracking_notes").where("id", "=", task.id).executeTakeFirst();
  const body = renderTrackingComment({
    state,
    stoppedIn: stopped,
    notes: Object.values(trackingNotesOf(fresh ?? task)),
    reason: task.blocked_reason ?? task.failure_reason,
    planUrl: task.plan_url,
    prNumber: task.pr_number,
    prUrl: task.pr_url,
    reviewUrl: task.review_url,
    reviewVerdict: task.review_verdict,
    testsConclusion: task.tests_conclusion,
    reworkCycles: task.rework_cycles,
    usage,
    wallTimeMs: task.started_at && task.finished_at ? task.finished_at - task.started_at : null,
  });
  const comment = await ensureComment(github, { issueNumber: task.issue_number, topic: "tracking", body, commentId: task.tracking_comment_id });
  if (comment.id !== task.tracking_comment_id) return updateTask(db, task.id, { tracking_comment_id: comment.id });
  return task;
}

/**
 * Stages that call a model or run repository commands, with the state each enters first: none
 * of them runs while the task's repository config is invalid.
 */
const CONFIG_GUARDED_ENTRY: Partial<Record<StageKind, TaskState>> = {
  plan: "planning",
  code: "coding",
  revise: "changes_requested",
  test: "testing",
  review: "reviewing",
};

/** One job of one task, with its GitHub port and context. */
class StageRun {
  #task: Task;

  constructor(
    private readonly deps: PipelineDeps,
    private readonly job: Job,
    task: Task,
    private readonly github: GitHubPort,
    private readonly signal: AbortSignal,
    private readonly log: Logger,
  ) {
    this.#task = task;
  }

  get #config(): RepoConfig {
    return RepoConfig.parse(JSON.parse(this.#task.config));
  }

  get #payload(): StageJobPayload {
    return jobPayload<StageJobPayload>(this.job);
  }

  async execute(kind: StageKind): Promise<StageOutcome> {
    // A job queued before the task was cancelled does not run; one created afterwards (a new run) does.
    if (this.#task.stage === "cancelled" && kind !== "pr_closed" && kind !== "cancel" && this.job.created_at <= (this.#task.finished_at ?? 0)) {
      this.log.info("task was cancelled; job skipped");
      return {};
    }
    const problems = configProblemsOf(this.#task);
    if (problems.length > 0 && kind in CONFIG_GUARDED_ENTRY) return this.#blockForConfig(kind, problems);
    switch (kind) {
      case "plan":
        return this.plan();
      case "code":
        return this.code(null);
      case "revise":
        return this.revise();
      case "test":
        return this.test();
      case "review":
        return this.review();
      case "merge":
        await this.#maybeAutoMerge();
        return {};
      case "pr_closed":
        return this.prClosed();
      case "cancel":
        return this.cancel();
      case "tracking":
        // Cosmetic: never fails the task (the next stage renders the notes again). Only an
        // existing comment is edited; the stage that creates it renders the notes too.
        if (this.#task.tracking_comment_id) {
          this.#task = await writeTracking(this.deps.db, this.github, this.#task).catch((err: unknown) => {
            this.log.warn({ err }, "re-rendering the tracking comment failed");
            return this.#task;
          });
        }
        return {};
    }
  }

  /**
   * Fail closed on an invalid repository config: before any model call or repository command,
   * the problems are posted (one marker comment, edited in place, never a second one) and the
   * task moves through the stage's entry state to `blocked` — so `/retry`, once the file is
   * fixed, resumes this stage.
   */
  async #blockForConfig(kind: StageKind, problems: string[]): Promise<StageOutcome> {
    const task = this.#task;
    this.log.warn({ problems }, "invalid repository config: work stopped before any model call");
    await ensureComment(this.github, { issueNumber: task.issue_number, topic: "config-problems", body: renderConfigProblems(problems, task.default_branch) });
    const entry = CONFIG_GUARDED_ENTRY[kind];
    const state = isTaskState(task.stage) ? task.stage : null;
    if (entry && state !== entry && canTransition(state, entry)) await this.#move(entry, `${kind} requested`);
    await this.#move("blocked", "invalid repository config", {
      blocked_reason:
        "`.github/mission-control.yml` is invalid (its problems are listed in a comment on this issue). Nothing runs until it is fixed on the default branch and a maintainer comments `/retry`.",
    });
    return {};
  }

  #runtime(agent: "architect" | "coder" | "reviewer" | "tester"): AgentRuntime {
    const task = this.#task;
    const github = this.github;
    const llm = this.deps.llm({
      installationId: task.installation_id,
      repository: `${task.owner}/${task.repo}`,
      subjectNumber: task.issue_number,
      taskId: task.id,
      jobId: this.job.id,
      agent,
      config: this.#config,
      onAlert: async (alert) => {
        const resets = alert.resetsAt ? ` Resets ${new Date(alert.resetsAt).toISOString().slice(0, 16).replace("T", " ")} UTC.` : "";
        await github.createComment(
          task.issue_number,
          `⚠️ **Budget alert:** ${alert.scopeLabel} ${alert.limit.period} spend is $${alert.spentUsd.toFixed(2)} of $${alert.limitUsd.toFixed(2)} (${alert.percent.toFixed(0)} %).${resets}`,
        );
      },
    });
    return { llm, model: this.#config.models[agent] ?? this.deps.defaultModel, signal: this.signal };
  }

  /** Moves the task to `to` (recorded), mirrors it in the label, and updates the tracking comment. */
  async #move(to: TaskState, reason: string, update: TaskUpdate = {}): Promise<void> {
    const actor = this.#payload.actor ?? APP_ACTOR;
    const stoppedIn = isTaskState(this.#task.stage) ? this.#task.stage : null;
    this.#task = await transition(this.deps.db, this.#task.id, to, { reason, actor });
    if (Object.keys(update).length > 0) this.#task = await updateTask(this.deps.db, this.#task.id, update);
    const issue = await applyStateLabel(this.github, this.#task.issue_number, to);
    await this.#noticeEdit(issue);
    this.#task = await writeTracking(this.deps.db, this.github, this.#task, ["blocked", "failed", "budget_exceeded", "cancelled"].includes(to) ? stoppedIn : null);
  }

  async #save(update: TaskUpdate): Promise<void> {
    this.#task = await updateTask(this.deps.db, this.#task.id, update);
  }

  /** The follow-up job; its dedupe key names this job, so a retry of this job cannot enqueue it twice and a later job never collides with it. */
  #next(kind: StageKind, payload: StageJobPayload = {}, nonce = "1"): StageOutcome {
    const base = this.#payload;
    return {
      next: nextJob(this.deps, this.#task, kind, { triggeredAt: base.triggeredAt, actor: base.actor, ...payload }, `${nonce}:after-${this.job.id}`, this.job.delivery_id),
    };
  }

  /**
   * The issue for an agent's prompt: the title and body **stored on the task when a maintainer
   * triggered the work** (never the live issue, which its author may edit afterwards), the
   * author, and the comments made before the trigger — all sanitised.
   */
  async #issueForPrompt(): Promise<IssueForPrompt> {
    const triggeredAt = this.#payload.triggeredAt ?? new Date(this.#task.created_at).toISOString();
    const live = await this.github.getIssue(this.#task.issue_number);
    if (this.#task.issue_title === null || this.#task.issue_body === null) {
      // A task stored before the copy existed: the copy is taken now, and kept from here on.
      this.log.info("no stored copy of the issue's text: taking it now");
      await this.#save({ issue_title: live.title, issue_body: live.body });
    } else if (await this.#noticeEdit(live)) {
      this.#task = await writeTracking(this.deps.db, this.github, this.#task);
    }
    const comments = (await this.github.listIssueComments(this.#task.issue_number)).filter(
      (c) => !c.body.startsWith("<!-- mission-control:") && c.authorType !== "Bot",
    );
    return {
      number: this.#task.issue_number,
      title: sanitizeUntrustedText(this.#task.issue_title ?? ""),
      body: sanitizeUntrustedText(this.#task.issue_body ?? ""),
      author: live.author,
      comments: commentsForPrompt(comments, triggeredAt),
    };
  }

  /**
   * Compares the live issue with the copy stored at the trigger; when its title or body
   * changed, records the tracking comment's note (once) and logs it. The edit itself is never used.
   *
   * @returns `true` when the note was added now
   */
  async #noticeEdit(live: IssueData): Promise<boolean> {
    const task = this.#task;
    if (task.issue_title === null || task.issue_body === null) return false;
    const same = (a: string, b: string) => a.replace(/\r\n/g, "\n") === b.replace(/\r\n/g, "\n");
    if (same(live.title, task.issue_title) && same(live.body, task.issue_body)) return false;
    const added = await setTrackingNote(this.deps.db, task.id, TRACKING_NOTE.issueEdited, issueEditedNote(task.triggered_by), { replace: false });
    if (added) this.log.warn({ issue: task.issue_number }, "the issue was edited after the trigger; the edit is ignored");
    return added;
  }

  /** The maintainer's notes of this job, sanitised, or null. */
  #notes(): { author: string; text: string } | null {
    const notes = this.#payload.notes?.trim();
    return notes ? { author: this.#payload.actor ?? "maintainer", text: sanitizeUntrustedText(notes) } : null;
  }

  #plan(): Plan {
    if (!this.#task.plan) throw new Error("the task has no plan; the plan stage must run first");
    return JSON.parse(this.#task.plan) as Plan;
  }

  #reworkLimitReached(): boolean {
    return this.#task.rework_cycles >= this.#config.coder.max_rework_cycles;
  }

  async #blockForRework(reason: string): Promise<StageOutcome> {
    const limit = this.#config.coder.max_rework_cycles;
    await this.#move("blocked", `rework limit of ${limit} cycles reached`, {
      blocked_reason: `The pull request was revised ${limit} times (the limit): ${reason} A human needs to take it from here — comment \`/code <instructions>\` to allow one more revision.`,
    });
    if (this.#task.pr_number) {
      await ensureComment(this.github, {
        issueNumber: this.#task.pr_number,
        topic: `rework-limit:${this.#task.head_sha ?? ""}`,
        body: `🙋 Mission Control revised this pull request ${limit} times (the repository's limit) and still has: ${reason}\n\nPlease take a look. \`/code <instructions>\` allows one more revision.`,
      });
    }
    return {};
  }

  async plan(): Promise<StageOutcome> {
    if (!this.#task.started_at) await this.#save({ started_at: Date.now() });
    await this.#move("planning", "planning started");
    const task = this.#task;
    if (!task.plan) {
      const issue = await this.#issueForPrompt();
      const dir = workspaceDir(this.deps.workspacesDir, task.owner, task.repo, task.issue_number, `plan-${this.job.id}`);
      const workspace = await this.deps.clone({ cloneUrl: task.clone_url, dir, token: await this.github.createGitToken(), branch: task.default_branch, depth: 1 });
      try {
        const snapshot = await snapshotRepository(workspace, issue, { fullName: `${task.owner}/${task.repo}`, defaultBranch: task.default_branch });
        const plan = await planIssue(this.#runtime("architect"), issue, snapshot, this.#notes());
        await this.#save({ plan: JSON.stringify(plan) });
      } finally {
        await removeWorkspace(dir);
      }
    }
    const comment = await ensureComment(this.github, {
      issueNumber: task.issue_number,
      topic: "plan",
      body: renderPlanMarkdown(this.#plan()),
      commentId: this.#task.plan_comment_id,
    });
    await this.#save({ plan_comment_id: comment.id, plan_url: comment.htmlUrl });
    this.log.info({ commentId: comment.id }, "plan posted");
    if (this.#config.require_plan_approval && !this.#task.plan_approved_by) {
      await this.#move("blocked", "waiting for /approve of the plan", {
        blocked_reason: "The repository requires a maintainer's `/approve` of the plan before the Coder starts.",
      });
      return {};
    }
    return this.#next("code");
  }

  async revise(): Promise<StageOutcome> {
    const feedback = this.#payload.feedback;
    if (!feedback) throw new Error("a revise job needs feedback");
    if (!this.#task.pr_number) return this.code(null);
    if (this.#reworkLimitReached() && feedback.source !== "command") return this.#blockForRework(`${feedback.source === "tests" ? "failing tests" : "requested changes"}.`);
    const revision = await this.#feedback(feedback);
    if (revision.source === "review" && !revision.text && revision.comments.length === 0) {
      this.log.info("the review has no body and no comments: nothing to revise");
      return {};
    }
    // Counted once per revision job, not again when a transient failure retries it.
    if (this.job.attempts <= 1) await this.#save({ rework_cycles: this.#task.rework_cycles + 1 });
    return this.code(revision);
  }

  async #feedback(payload: NonNullable<StageJobPayload["feedback"]>): Promise<RevisionFeedback> {
    let comments: RevisionFeedback["comments"] = [];
    let text = sanitizeUntrustedText(payload.text ?? "");
    if (payload.source === "review" && this.#task.pr_number) {
      const all = await this.github.listReviewComments(this.#task.pr_number);
      comments = all
        .filter((c) => (payload.reviewId ? c.reviewId === payload.reviewId : true))
        .map((c) => ({ path: c.path, line: c.line, body: sanitizeUntrustedText(c.body), author: c.author }));
      if (payload.reviewId && !text) {
        const review = (await this.github.listReviews(this.#task.pr_number)).find((r) => r.id === payload.reviewId);
        text = sanitizeUntrustedText(review?.body ?? "");
      }
    }
    return { source: payload.source, text, comments, requestedBy: payload.requestedBy };
  }

  async code(given: RevisionFeedback | null): Promise<StageOutcome> {
    const notes = this.#notes();
    const feedback: RevisionFeedback | null =
      given ?? (notes && this.#task.pr_number ? { source: "command", text: notes.text, comments: [], requestedBy: notes.author } : null);
    if (!this.#task.started_at) await this.#save({ started_at: Date.now() });
    if (this.#task.stage !== "coding") {
      if (feedback && this.#task.stage !== "changes_requested") await this.#move("changes_requested", `revision requested (${feedback.source})`);
      await this.#move("coding", feedback ? `revising after ${feedback.source}` : "implementation started");
    }
    const task = this.#task;
    const config = this.#config;
    const issue = await this.#issueForPrompt();
    // Each run gets its own branch, so a new run never builds on a merged or abandoned one.
    const branch = task.branch ?? `${branchName(task.issue_number, issue.title)}${task.run > 1 ? `-run${task.run}` : ""}`;
    const dir = workspaceDir(this.deps.workspacesDir, task.owner, task.repo, task.issue_number);
    await pruneWorkspaces(this.deps.workspacesDir, this.deps.workspacesMaxBytes, new Set([dir])).catch((err: unknown) =>
      this.log.warn({ err }, "pruning workspaces failed"),
    );
    const { workspace } = await prepareWorkspace({
      dir,
      cloneUrl: task.clone_url,
      token: await this.github.createGitToken(),
      defaultBranch: task.default_branch,
      branch,
      settings: this.deps.git,
    });
    const onBranch = await workspace.remoteBranchExists(branch);
    if (!onBranch) await workspace.createBranch(branch);
    await this.#save({ branch });

    const plan = this.#plan();
    const existingPr = task.pr_number ? await this.github.getPullRequest(task.pr_number) : await this.github.findPullRequestByBranch(branch);
    const openPr = existingPr && existingPr.state === "open" ? existingPr : null;

    // Resumed after an interruption: this run's branch already carries the Coder's commits but no PR was recorded.
    if (!feedback && !task.pr_number && onBranch && (await workspace.commitsAhead(`origin/${task.default_branch}`)) > 0) {
      const pr =
        openPr ??
        (await this.github.createPullRequest({
          title: issue.title,
          body: pullRequestBody(task.issue_number, plan, "_(resumed: the branch was pushed by an earlier attempt)_"),
          head: branch,
          base: task.default_branch,
          draft: false,
        }));
      await this.#save({ pr_number: pr.number, pr_url: pr.htmlUrl, head_sha: pr.headSha });
      this.log.info({ pr: pr.number }, "resumed: branch already pushed, pull request ensured");
      this.#task = await writeTracking(this.deps.db, this.github, this.#task);
      return this.#next("test", {}, pr.headSha);
    }

    const ceilings = this.deps.coderCeilings;
    const sandbox = this.deps.sandbox(workspace.root);
    const result = await implementIssue(
      this.#runtime("coder"),
      { github: this.github, workspace, bot: await this.github.getBotIdentity() },
      {
        issue,
        plan,
        defaultBranch: task.default_branch,
        branch,
        pullRequest: openPr,
        feedback,
        notes: !feedback && notes ? notes : null,
        limits: {
          maxTurns: Math.min(config.coder.max_turns, ceilings.maxTurns),
          maxTokens: config.coder.max_tokens,
          maxOutputTokens: Math.min(config.coder.max_output_tokens, ceilings.maxOutputTokens),
          maxMs: Math.min(config.coder.max_minutes, ceilings.maxMinutes) * 60_000,
        },
        protectedPaths: config.protected_paths,
        protectedPathsApproved: Boolean(task.approved_by),
        coAuthor: task.triggered_by && task.triggered_by !== APP_ACTOR ? { login: task.triggered_by, id: task.triggered_by_id } : null,
        runCommand: async (command) => {
          const outcome = await sandbox(command, { timeoutMs: config.test.timeout_minutes * 60_000, network: false, signal: this.signal });
          const log = `${outcome.stdout}\n${outcome.stderr}`.trim().split("\n").slice(-80).join("\n");
          return `exit code: ${outcome.exitCode ?? "killed"}${outcome.timedOut ? " (timed out)" : ""}, ${(outcome.durationMs / 1000).toFixed(1)} s\n${log}`;
        },
      },
    );
    await this.#save({ pr_number: result.pullRequest.number, pr_url: result.pullRequest.htmlUrl, head_sha: result.headSha });
    this.log.info({ pr: result.pullRequest.number, branch, turns: result.turns, stopped: result.stopped?.limit }, "coder finished");

    if (feedback && result.changedFiles.length > 0) await replyToRevision(this.github, result.pullRequest.number, result, feedback);
    if (result.stopped) {
      await this.#move("blocked", `coder limit: ${result.stopped.limit}`, {
        blocked_reason: `${result.stopped.message} The work so far is pushed to \`${branch}\` (pull request #${result.pullRequest.number}${result.pullRequest.draft ? ", a draft" : ""}); it is not done. Comment \`/code <instructions>\` to continue.`,
      });
      return {};
    }
    this.#task = await writeTracking(this.deps.db, this.github, this.#task);
    return this.#next("test", {}, result.headSha);
  }

  async test(): Promise<StageOutcome> {
    await this.#move("testing", "tests started");
    const task = this.#task;
    const config = this.#config;
    if (!task.pr_number || !task.branch) throw new Error("the task has no pull request; the code stage must run first");
    const pr = await this.github.getPullRequest(task.pr_number);
    const dir = workspaceDir(this.deps.workspacesDir, task.owner, task.repo, task.issue_number);
    const { workspace } = await prepareWorkspace({
      dir,
      cloneUrl: task.clone_url,
      token: await this.github.createGitToken(),
      defaultBranch: task.default_branch,
      branch: task.branch,
      settings: this.deps.git,
    });
    const command = await detectTestCommand(workspace.root, config.test.command);
    const files = await this.github.listPullRequestFiles(pr.number);
    const report = await testPullRequest(
      this.#runtime("tester"),
      { github: this.github, run: this.deps.sandbox(workspace.root), parseCounts: parseTestCounts, signal: this.signal },
      {
        headSha: pr.headSha,
        plan: task.plan ? this.#plan() : null,
        diffText: renderDiff(files).text,
        testCommand: command,
        setupCommand: config.test.setup ?? null,
        allowSetupNetwork: this.deps.allowSetupNetwork,
        timeoutMs: config.test.timeout_minutes * 60_000,
      },
    );
    await this.#save({ tests_conclusion: report.conclusion, head_sha: pr.headSha });
    this.log.info({ conclusion: report.conclusion, command: report.command, reused: report.reused }, "tests reported");
    if (report.conclusion === "failure" || report.conclusion === "timed_out") {
      if (this.#reworkLimitReached()) return this.#blockForRework("failing tests.");
      await this.#move("changes_requested", "tests failed");
      return this.#next(
        "revise",
        { feedback: { source: "tests", text: `The test command \`${report.command}\` failed (exit code ${report.exitCode ?? "none"}). End of its output:\n\n${report.logTail}`, requestedBy: APP_ACTOR } },
        pr.headSha,
      );
    }
    return this.#next("review", {}, pr.headSha);
  }

  async review(): Promise<StageOutcome> {
    await this.#move("reviewing", "review started");
    const task = this.#task;
    const config = this.#config;
    if (!task.pr_number) throw new Error("the task has no pull request to review");
    const result = await reviewPullRequest(
      this.#runtime("reviewer"),
      { github: this.github, bot: await this.github.getBotIdentity() },
      {
        pullNumber: task.pr_number,
        plan: task.plan ? this.#plan() : null,
        sinceSha: task.reviewed_sha,
        testsFailing: task.tests_conclusion === "failure" || task.tests_conclusion === "timed_out",
        allowApprove: config.review.approve,
      },
    );
    await this.#save({ review_url: result.review.htmlUrl, review_verdict: result.verdict, reviewed_sha: result.headSha, head_sha: result.headSha });
    this.log.info({ verdict: result.verdict, reused: result.reused, inline: result.inlineComments }, "review submitted");

    if (result.verdict === "request_changes" && task.plan) {
      if (this.#reworkLimitReached()) return this.#blockForRework("changes requested by the Reviewer.");
      await this.#move("changes_requested", "the Reviewer requested changes");
      return this.#next("revise", { feedback: { source: "review", reviewId: result.review.id, requestedBy: "Reviewer" } }, result.headSha);
    }
    if (result.verdict === "request_changes") {
      await this.#move("changes_requested", "the Reviewer requested changes");
      return {};
    }
    await this.#move("ready_for_merge", `review verdict: ${result.verdict}`, { finished_at: Date.now() });
    if (config.auto_merge) await this.#maybeAutoMerge();
    return {};
  }

  /**
   * The approvals `auto_merge` counts: `APPROVED` reviews by a person (not the app, not a
   * `[bot]`) given on the pull request's current head sha (`commit_id`) by someone with write,
   * maintain or admin permission (`GET /repos/{owner}/{repo}/collaborators/{username}/permission`,
   * asked once per reviewer). Every other approval is ignored and logged with the reason.
   */
  async #approvalsThatCount(pr: PullRequestData, bot: BotIdentity): Promise<ReviewData[]> {
    const writers = new Map<string, { writer: boolean; permission: string }>();
    const counted: ReviewData[] = [];
    for (const review of await this.github.listReviews(pr.number)) {
      if (review.state !== "APPROVED") continue;
      const fields = { reviewer: review.author, reviewId: review.id, commitId: review.commitId, headSha: pr.headSha };
      if (review.author === bot.login || review.author.endsWith("[bot]")) {
        this.log.info({ ...fields, reason: "bot" }, "auto_merge: approval ignored: it comes from a bot");
        continue;
      }
      if (review.commitId !== pr.headSha) {
        this.log.info({ ...fields, reason: "older_head" }, "auto_merge: approval ignored: it was given on an older head, not the pull request's current one");
        continue;
      }
      let access = writers.get(review.author);
      if (!access) {
        const answer = await this.github.getRepositoryPermission(review.author);
        access = { writer: canWrite({ permission: answer.permission, role_name: answer.roleName }), permission: answer.roleName ?? answer.permission };
        writers.set(review.author, access);
      }
      if (!access.writer) {
        this.log.info({ ...fields, reason: "no_write_permission", permission: access.permission }, "auto_merge: approval ignored: the reviewer has no write permission");
        continue;
      }
      counted.push(review);
    }
    return counted;
  }

  /**
   * Merges only when repo config `auto_merge: true`, every check run passed, and a person with
   * write permission approved the PR's current head (see `#approvalsThatCount`).
   */
  async #maybeAutoMerge(): Promise<void> {
    const task = this.#task;
    if (!task.pr_number) return;
    const pr = await this.github.getPullRequest(task.pr_number);
    const bot = await this.github.getBotIdentity();
    const checks = await this.github.listCheckRuns(pr.headSha);
    // Every check completed without failing, and the app's own verdict is an explicit success.
    const allPassed =
      checks.length > 0 &&
      checks.every((c) => c.status === "completed" && (c.conclusion === "success" || c.conclusion === "skipped" || c.conclusion === "neutral")) &&
      checks.some((c) => c.name === "Mission Control / Review" && c.conclusion === "success");
    const humanApproved = (await this.#approvalsThatCount(pr, bot)).length > 0;
    if (!allPassed || !humanApproved) {
      this.log.info({ allPassed, humanApproved }, "auto_merge: waiting for checks and a human approval");
      return;
    }
    await this.github.mergePullRequest(pr.number, pr.headSha, "squash");
    this.log.info({ pr: pr.number }, "auto_merge: merged");
  }

  async prClosed(): Promise<StageOutcome> {
    const merged = (this.#payload as { merged?: boolean }).merged === true;
    const task = this.#task;
    if (merged) {
      await this.#move("merged", "pull request merged", { finished_at: Date.now() });
    } else if (task.stage !== "cancelled") {
      await this.#move("cancelled", "pull request closed without merging", { blocked_reason: null, failure_reason: "The pull request was closed without merging." });
    }
    await removeIssueWorkspaces(this.deps.workspacesDir, task.owner, task.repo, task.issue_number);
    return {};
  }

  async cancel(): Promise<StageOutcome> {
    const reason = (this.#payload as { reason?: string }).reason ?? "Cancelled.";
    // "The run continues" no longer holds once it is cancelled.
    await clearTrackingNote(this.deps.db, this.#task.id, TRACKING_NOTE.issueClosed);
    if (this.#task.stage !== "cancelled") {
      await this.#move("cancelled", reason, { failure_reason: reason, blocked_reason: null });
    } else {
      await applyStateLabel(this.github, this.#task.issue_number, "cancelled");
      this.#task = await writeTracking(this.deps.db, this.github, this.#task);
    }
    return {};
  }
}
