import path from "node:path";

import type { Logger } from "pino";

import { type Plan, planIssue, renderPlanMarkdown, snapshotRepository } from "../agents/architect.js";
import { implementIssue } from "../agents/coder.js";
import type { IssueForPrompt } from "../agents/context.js";
import { reviewPullRequest } from "../agents/reviewer.js";
import { RepoConfig } from "../config/repo-config.js";
import { ensureComment, setStageLabel } from "../github/output/ensure.js";
import type { GitHubPort } from "../github/output/port.js";
import { commentsForPrompt, sanitizeUntrustedText } from "../github/sanitize.js";
import type { Db } from "../ledger/db.js";
import type { Job, Task, TaskUpdate } from "../ledger/schema.js";
import { usageTotalsForTask } from "../ledger/usage.js";
import type { Llm } from "../llm/client.js";
import type { CloneOptions, GitWorkspace } from "../workspace/git.js";
import { removeWorkspace } from "../workspace/git.js";
import type { JobSpec } from "./queue.js";
import { jobPayload } from "./queue.js";
import { renderTrackingComment, type Stage, stageLabel, type TaskStage } from "./tracking-comment.js";

/** Who the ledger charges a call to. */
export interface UsageContext {
  installationId: number;
  repository: string;
  subjectNumber: number;
  taskId: number;
  jobId: number;
  agent: string;
}

/** Everything the stages need, injected by the app (and by tests). */
export interface PipelineDeps {
  db: Db;
  /** The GitHub port for one installation and repository. */
  github(target: { installationId: number; owner: string; repo: string }): Promise<GitHubPort>;
  /** A Messages API client that records each call's usage against `context`. */
  llm(context: UsageContext): Llm;
  clone(options: CloneOptions): Promise<GitWorkspace>;
  /** Root folder of the clones. */
  workspacesDir: string;
  /** The model of an agent when the repository config names none. */
  defaultModel: string;
  /** Attempts of each follow-up job. */
  maxAttempts: number;
}

/** Payload of the first job of a run. */
export interface PlanJobPayload {
  /** ISO time the trigger arrived: comments edited after it are not trusted. */
  triggeredAt: string;
}

/** What a finished stage asks the worker to do next. */
export interface StageOutcome {
  next?: JobSpec;
}

/** The lock key shared by every job of one issue. */
export function lockKeyFor(owner: string, repo: string, issueNumber: number): string {
  return `${owner}/${repo}#${issueNumber}`;
}

const NEXT_STAGE: Record<Stage, Stage | null> = { plan: "code", code: "review", review: null };

function isStage(kind: string): kind is Stage {
  return kind === "plan" || kind === "code" || kind === "review";
}

/**
 * Runs one stage of an issue's pipeline (plan → code → review) and says which job comes next.
 * Each stage is idempotent: what it already wrote to GitHub (found by marker, branch, or the
 * ids stored on the task) is reused, so a retried or resumed job never writes twice.
 *
 * @throws whatever the stage threw; the worker decides retry or failure
 */
export async function runStage(deps: PipelineDeps, job: Job, signal: AbortSignal, log: Logger): Promise<StageOutcome> {
  if (!isStage(job.kind)) throw new Error(`unknown job kind "${job.kind}"`);
  const task = await loadTask(deps.db, job.task_id);
  const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo });
  const stage = new StageRun(deps, job, task, github, signal, log);

  switch (job.kind) {
    case "plan":
      await stage.plan(jobPayload<PlanJobPayload>(job));
      break;
    case "code":
      await stage.code();
      break;
    case "review":
      await stage.review();
      break;
  }
  const next = NEXT_STAGE[job.kind];
  if (!next) return {};
  return {
    next: {
      kind: next,
      taskId: task.id,
      installationId: task.installation_id,
      lockKey: job.lock_key,
      dedupeKey: `task:${task.id}:run:${task.run}:${next}`,
      deliveryId: job.delivery_id,
      payload: job.payload === "{}" ? {} : jobPayload(job),
      maxAttempts: deps.maxAttempts,
    },
  };
}

/**
 * Finalises a task whose job failed for good: the `mc:failed` label, and the tracking comment
 * with the reason — never a spinner left behind.
 */
export async function failTask(deps: PipelineDeps, job: Job, reason: string, log: Logger): Promise<void> {
  const task = await updateTask(deps.db, job.task_id, { stage: "failed", failure_reason: reason });
  try {
    const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo });
    await setStageLabel(github, task.issue_number, stageLabel("failed"));
    await writeTracking(deps.db, github, task, isStage(job.kind) ? job.kind : null);
  } catch (err) {
    log.error({ err }, "could not report the failure on GitHub");
  }
}

async function loadTask(db: Db, taskId: number): Promise<Task> {
  return db.selectFrom("tasks").selectAll().where("id", "=", taskId).executeTakeFirstOrThrow();
}

async function updateTask(db: Db, taskId: number, update: TaskUpdate): Promise<Task> {
  return db
    .updateTable("tasks")
    .set({ ...update, updated_at: Date.now() })
    .where("id", "=", taskId)
    .returningAll()
    .executeTakeFirstOrThrow();
}

async function writeTracking(db: Db, github: GitHubPort, task: Task, failedStage: Stage | null = null): Promise<Task> {
  const usage = await usageTotalsForTask(db, task.id);
  const body = renderTrackingComment({
    stage: task.stage as TaskStage,
    failedStage,
    failureReason: task.failure_reason,
    planUrl: task.plan_url,
    prNumber: task.pr_number,
    prUrl: task.pr_url,
    reviewUrl: task.review_url,
    reviewVerdict: task.review_verdict,
    usage,
  });
  const comment = await ensureComment(github, {
    issueNumber: task.issue_number,
    topic: "tracking",
    body,
    commentId: task.tracking_comment_id,
  });
  if (comment.id !== task.tracking_comment_id) return updateTask(db, task.id, { tracking_comment_id: comment.id });
  return task;
}

/** One stage of one task, with its GitHub port and job context. */
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

  #runtime(agent: "architect" | "coder" | "reviewer") {
    const task = this.#task;
    const llm = this.deps.llm({
      installationId: task.installation_id,
      repository: `${task.owner}/${task.repo}`,
      subjectNumber: task.issue_number,
      taskId: task.id,
      jobId: this.job.id,
      agent,
    });
    return { llm, model: this.#config.models[agent] ?? this.deps.defaultModel, signal: this.signal };
  }

  async #enter(stage: TaskStage): Promise<void> {
    this.#task = await updateTask(this.deps.db, this.#task.id, { stage, failure_reason: null });
    await setStageLabel(this.github, this.#task.issue_number, stageLabel(stage));
    this.#task = await writeTracking(this.deps.db, this.github, this.#task);
  }

  async #save(update: TaskUpdate): Promise<void> {
    this.#task = await updateTask(this.deps.db, this.#task.id, update);
  }

  async #issueForPrompt(triggeredAt: string): Promise<IssueForPrompt> {
    const issue = await this.github.getIssue(this.#task.issue_number);
    const comments = (await this.github.listIssueComments(this.#task.issue_number)).filter(
      (c) => !c.body.startsWith("<!-- mission-control:") && c.authorType !== "Bot",
    );
    return {
      number: issue.number,
      title: sanitizeUntrustedText(issue.title),
      body: sanitizeUntrustedText(issue.body),
      author: issue.author,
      comments: commentsForPrompt(comments, triggeredAt),
    };
  }

  #workspaceDir(purpose: string): string {
    const t = this.#task;
    return path.resolve(this.deps.workspacesDir, t.owner, t.repo, `issue-${t.issue_number}`, purpose);
  }

  async #plan(): Promise<Plan> {
    if (!this.#task.plan) throw new Error("the task has no plan; the plan stage must run first");
    return JSON.parse(this.#task.plan) as Plan;
  }

  async plan(payload: PlanJobPayload): Promise<void> {
    await this.#enter("planning");
    const task = this.#task;
    if (!task.plan) {
      const issue = await this.#issueForPrompt(payload.triggeredAt);
      const dir = this.#workspaceDir(`plan-${this.job.id}`);
      const workspace = await this.deps.clone({
        cloneUrl: task.clone_url,
        dir,
        token: await this.github.createGitToken(),
        branch: task.default_branch,
        depth: 1,
      });
      try {
        const snapshot = await snapshotRepository(workspace, issue, {
          fullName: `${task.owner}/${task.repo}`,
          defaultBranch: task.default_branch,
        });
        const plan = await planIssue(this.#runtime("architect"), issue, snapshot);
        await this.#save({ plan: JSON.stringify(plan) });
      } finally {
        await removeWorkspace(dir);
      }
    }
    const comment = await ensureComment(this.github, {
      issueNumber: task.issue_number,
      topic: "plan",
      body: renderPlanMarkdown(await this.#plan()),
      commentId: this.#task.plan_comment_id,
    });
    await this.#save({ plan_comment_id: comment.id, plan_url: comment.htmlUrl });
    this.log.info({ commentId: comment.id }, "plan posted");
  }

  async code(): Promise<void> {
    await this.#enter("coding");
    const task = this.#task;
    const payload = jobPayload<Partial<PlanJobPayload>>(this.job);
    const issue = await this.#issueForPrompt(payload.triggeredAt ?? new Date(task.created_at).toISOString());
    const dir = this.#workspaceDir("code");
    const workspace = await this.deps.clone({
      cloneUrl: task.clone_url,
      dir,
      token: await this.github.createGitToken(),
      branch: task.default_branch,
    });
    try {
      const config = this.#config;
      const result = await implementIssue(
        this.#runtime("coder"),
        { github: this.github, workspace, bot: await this.github.getBotIdentity() },
        {
          issue,
          plan: await this.#plan(),
          defaultBranch: task.default_branch,
          maxTurns: config.coder.max_turns,
          maxTokens: config.coder.max_tokens,
        },
      );
      await this.#save({ branch: result.branch, pr_number: result.pullRequest.number, pr_url: result.pullRequest.htmlUrl });
      this.log.info({ pr: result.pullRequest.number, branch: result.branch, turns: result.turns }, "pull request ready");
    } finally {
      await removeWorkspace(dir);
    }
    this.#task = await writeTracking(this.deps.db, this.github, this.#task);
  }

  async review(): Promise<void> {
    await this.#enter("reviewing");
    const prNumber = this.#task.pr_number;
    if (!prNumber) throw new Error("the task has no pull request; the code stage must run first");
    const result = await reviewPullRequest(
      this.#runtime("reviewer"),
      { github: this.github, bot: await this.github.getBotIdentity() },
      { pullNumber: prNumber, plan: await this.#plan() },
    );
    await this.#save({ review_url: result.review.htmlUrl, review_verdict: result.verdict, stage: "done" });
    await setStageLabel(this.github, this.#task.issue_number, stageLabel("done"));
    this.#task = await writeTracking(this.deps.db, this.github, this.#task);
    this.log.info({ verdict: result.verdict, reused: result.reused }, "review submitted");
  }
}
