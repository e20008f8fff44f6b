import type { Logger } from "pino";

import { Plan } from "../agents/architect.js";
import type { AgentRuntime, IssueForPrompt } from "../agents/context.js";
import { RepoConfig } from "../config/repo-config.js";
import { afterJobNonce, APP_ACTOR, type StageJobPayload, type StageKind } from "../domain/jobs.js";
import { canTransition, isStopped, isTaskState, STAGE_ENTRY_STATE, type TaskState } from "../domain/task-state.js";
import type { GitHubPort, IssueData } from "../ports/github.js";
import { commentsForPrompt, sanitizeUntrustedText } from "../prompt/index.js";
import type { Task, TaskUpdate } from "../store/schema.js";
import { setTrackingNote, updateTask } from "../store/tasks.js";
import { transition } from "../store/transitions.js";
import { nextJob, type PipelineDeps, type StageJob, type StageOutcome } from "./pipeline-deps.js";
import { applyStateLabel, issueEditedNote, reportBudgetAlert, reportConfigProblems, reportReworkLimit, TRACKING_NOTE, writeTracking } from "./reporter.js";

/**
 * Stages that call a model or run repository commands, with the state each enters first: none
 * of them runs while the task's repository config is invalid.
 */
export const CONFIG_GUARDED_ENTRY: Partial<Record<StageKind, TaskState>> = STAGE_ENTRY_STATE;

/**
 * One job of one task as the stage modules see it: the task (reloaded as it changes), its
 * repository config, the job's payload, the GitHub port (refused once the job's signal aborts)
 * and the moves every stage shares — a recorded transition mirrored in the label and the
 * tracking comment, the next job, an agent's runtime.
 */
export class StageContext {
  task: Task;

  constructor(
    readonly deps: PipelineDeps,
    readonly job: StageJob,
    task: Task,
    readonly github: GitHubPort,
    readonly signal: AbortSignal,
    readonly log: Logger,
  ) {
    this.task = task;
  }

  /** The task's repository config snapshot. */
  get config(): RepoConfig {
    return RepoConfig.parse(JSON.parse(this.task.config));
  }

  /** The job's payload (parsed when the job was claimed). */
  get payload(): StageJobPayload & { merged?: boolean; reason?: string } {
    return this.job.data.payload;
  }

  /** An agent's runtime: the metered LLM charged to this task and job, its model, the job's signal. */
  runtime(agent: "architect" | "coder" | "reviewer" | "tester"): AgentRuntime {
    const task = this.task;
    const github = this.github;
    const llm = this.deps.llm({
      installationId: task.installation_id,
      repository: `${task.owner}/${task.repo}`,
      subjectNumber: task.issue_number,
      taskId: task.id,
      jobId: this.job.id,
      agent,
      config: this.config,
      onAlert: (alert) => reportBudgetAlert(github, task.issue_number, alert),
    });
    return { llm, model: this.config.models[agent] ?? this.deps.defaultModel, signal: this.signal };
  }

  /** Moves the task to `to` (recorded), mirrors it in the label, and updates the tracking comment. */
  async move(to: TaskState, reason: string, update: TaskUpdate = {}): Promise<void> {
    const actor = this.payload.actor ?? APP_ACTOR;
    const stoppedIn = isTaskState(this.task.stage) ? this.task.stage : null;
    this.task = await transition(this.deps.db, this.task.id, to, { reason, actor });
    if (Object.keys(update).length > 0) this.task = await updateTask(this.deps.db, this.task.id, update);
    const issue = await applyStateLabel(this.github, this.task.issue_number, to);
    await this.noticeEdit(issue);
    this.task = await writeTracking(this.deps.db, this.github, this.task, isStopped(to) ? stoppedIn : null);
  }

  /** Stores `update` on the task (and keeps the reloaded row). */
  async save(update: TaskUpdate): Promise<void> {
    this.task = await updateTask(this.deps.db, this.task.id, update);
  }

  /** The follow-up job; its dedupe key names this job, so a retry of this job cannot enqueue it twice and a later job never collides with it. */
  next(kind: StageKind, payload: StageJobPayload = {}, nonce = "1"): StageOutcome {
    const base = this.payload;
    return {
      next: nextJob(
        this.deps,
        this.task,
        kind,
        { triggeredAt: base.triggeredAt, actor: base.actor, ...payload },
        afterJobNonce(nonce, this.job.id),
        this.job.delivery_id,
      ),
    };
  }

  /**
   * The issue for an agent's prompt: the title and body **stored on the task when a maintainer
   * triggered the work** (never the live issue, which its author may edit afterwards), the
   * author, and the comments made before the trigger — all sanitised.
   */
  async issueForPrompt(): Promise<IssueForPrompt> {
    const triggeredAt = this.payload.triggeredAt ?? new Date(this.task.created_at).toISOString();
    const live = await this.github.getIssue(this.task.issue_number);
    if (this.task.issue_title === null || this.task.issue_body === null) {
      // A task stored before the copy existed: the copy is taken now, and kept from here on.
      this.log.info("no stored copy of the issue's text: taking it now");
      await this.save({ issue_title: live.title, issue_body: live.body });
    } else if (await this.noticeEdit(live)) {
      this.task = await writeTracking(this.deps.db, this.github, this.task);
    }
    const comments = (await this.github.listIssueComments(this.task.issue_number)).filter(
      (c) => !c.body.startsWith("<!-- mission-control:") && c.authorType !== "Bot",
    );
    return {
      number: this.task.issue_number,
      title: sanitizeUntrustedText(this.task.issue_title ?? ""),
      body: sanitizeUntrustedText(this.task.issue_body ?? ""),
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
  async noticeEdit(live: IssueData): Promise<boolean> {
    const task = this.task;
    if (task.issue_title === null || task.issue_body === null) return false;
    const same = (a: string, b: string) => a.replace(/\r\n/g, "\n") === b.replace(/\r\n/g, "\n");
    if (same(live.title, task.issue_title) && same(live.body, task.issue_body)) return false;
    const added = await setTrackingNote(this.deps.db, task.id, TRACKING_NOTE.issueEdited, issueEditedNote(task.triggered_by), { replace: false });
    if (added) this.log.warn({ issue: task.issue_number }, "the issue was edited after the trigger; the edit is ignored");
    return added;
  }

  /** The maintainer's notes of this job, sanitised, or null. */
  notes(): { author: string; text: string } | null {
    const notes = this.payload.notes?.trim();
    return notes ? { author: this.payload.actor ?? "maintainer", text: sanitizeUntrustedText(notes) } : null;
  }

  /**
   * The run's stored plan, parsed with the Architect's schema.
   *
   * @throws when the plan stage has not run, or a ZodError when the stored plan is malformed
   */
  plan(): Plan {
    if (!this.task.plan) throw new Error("the task has no plan; the plan stage must run first");
    return Plan.parse(JSON.parse(this.task.plan));
  }

  /** `true` once the pull request was revised `coder.max_rework_cycles` times. */
  reworkLimitReached(): boolean {
    return this.task.rework_cycles >= this.config.coder.max_rework_cycles;
  }

  /** Stops the task in `blocked` at the rework limit and asks a human on the pull request. */
  async blockForRework(reason: string): Promise<StageOutcome> {
    const limit = this.config.coder.max_rework_cycles;
    await this.move("blocked", `rework limit of ${limit} cycles reached`, {
      blocked_reason: `The pull request was revised ${limit} times (the limit): ${reason} A human needs to take it from here — comment \`/code <instructions>\` to allow one more revision.`,
    });
    if (this.task.pr_number) await reportReworkLimit(this.github, this.task, limit, reason);
    return {};
  }

  /**
   * Fail closed on an invalid repository config: before any model call or repository command,
   * the problems are posted (one marker comment, edited in place, never a second one) and the
   * task moves through the stage's entry state to `blocked` — so `/retry`, once the file is
   * fixed, resumes this stage.
   */
  async blockForConfig(kind: StageKind, problems: string[]): Promise<StageOutcome> {
    const task = this.task;
    this.log.warn({ problems }, "invalid repository config: work stopped before any model call");
    await reportConfigProblems(this.github, task, problems);
    const entry = CONFIG_GUARDED_ENTRY[kind];
    const state = isTaskState(task.stage) ? task.stage : null;
    if (entry && state !== entry && canTransition(state, entry)) await this.move(entry, `${kind} requested`);
    await this.move("blocked", "invalid repository config", {
      blocked_reason:
        "`.github/mission-control.yml` is invalid (its problems are listed in a comment on this issue). Nothing runs until it is fixed on the default branch and a maintainer comments `/retry`.",
    });
    return {};
  }
}
