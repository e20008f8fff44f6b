import type { Logger } from "pino";

import { RepoConfig } from "../config/repo-config.js";
import { type CommandName, helpText } from "../github/commands.js";
import { ensureComment } from "../github/output/ensure.js";
import { mergeLimits, repoBudgetLimits } from "../ledger/budgets.js";
import type { Job } from "../ledger/schema.js";
import { canTransition, isTaskState, RESTING_STATES, type TaskState, transitionsOf } from "./lifecycle.js";
import { clearTrackingNote, loadTask, nextJob, type PipelineDeps, type StageKind, TRACKING_NOTE, updateTask } from "./pipeline.js";
import { renderBudget, renderReport, renderStatus } from "./reports.js";
import type { JobResult } from "./worker.js";

/** Payload of a `command` job, built by the webhook handler from an accepted comment. */
export interface CommandJobPayload {
  name: CommandName;
  args: string;
  /** The comment that carried the command. */
  commentId: number;
  /** Issue or PR the comment is on. */
  subjectNumber: number;
  isPullRequest: boolean;
  actor: string;
  /** The actor owns the organisation (checked by the handler): may `/stop all` and lift it with `/retry`. */
  actorIsOrgOwner: boolean;
  appSlug: string;
  triggeredAt: string;
  /**
   * The issue's title and body from the delivery, when the comment is on the issue itself (not
   * on a pull request): what the maintainer saw when commenting. `/plan`, `/code` and `/retry`
   * store it on the task when they start work; nothing else does. Absent in jobs queued before
   * this field existed.
   */
  issue?: { title: string; body: string } | null;
}

/** The state each stage moves the task into when it starts. */
const ENTRY_STATE: Partial<Record<StageKind, TaskState>> = {
  plan: "planning",
  code: "coding",
  revise: "changes_requested",
  test: "testing",
  review: "reviewing",
  cancel: "cancelled",
};

/** The stage to resume for a task that stopped while in `state`. */
const RESUME: Partial<Record<TaskState, StageKind>> = { planning: "plan", coding: "code", testing: "test", reviewing: "review", changes_requested: "revise" };

/**
 * Runs one accepted slash-command. Replies (or the tracking comment) say what happened;
 * work it starts is returned as the next job, on the issue's lock, so it runs after whatever
 * job the issue has now.
 */
export async function runCommandJob(deps: PipelineDeps, job: Job, log: Logger): Promise<JobResult> {
  const payload = JSON.parse(job.payload) as CommandJobPayload;
  let task = await loadTask(deps.db, job.task_id);
  const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log });
  const reply = (topic: string, body: string) =>
    ensureComment(github, { issueNumber: payload.subjectNumber, topic: `command:${payload.commentId}:${topic}`, body });
  const config = RepoConfig.parse(JSON.parse(task.config));
  const limits = mergeLimits(deps.serverLimits, repoBudgetLimits(config.budget, `${task.owner}/${task.repo}`));
  const state = isTaskState(task.stage) ? task.stage : null;
  const start = (kind: StageKind, extra: Record<string, unknown> = {}): JobResult => ({
    next: nextJob(deps, task, kind, { triggeredAt: payload.triggeredAt, actor: payload.actor, ...extra }, `cmd-${payload.commentId}`, job.delivery_id),
  });
  /** `true` when the stage `kind` may start from the task's state; otherwise says why on GitHub. */
  const allowed = async (kind: StageKind): Promise<boolean> => {
    const target = ENTRY_STATE[kind];
    if (!target || canTransition(state, target) || state === target) return true;
    await reply(payload.name, `\`/${payload.name}\` cannot run now: #${task.issue_number} is \`${task.stage}\`.`);
    return false;
  };
  /**
   * Stores the issue's title and body as the maintainer saw them when commenting (a trigger:
   * `/plan`, `/code`, `/retry`), so the agents work from that text; an earlier note about an
   * ignored edit no longer applies.
   */
  const adoptIssueText = async (): Promise<void> => {
    if (!payload.issue || payload.isPullRequest || payload.subjectNumber !== task.issue_number) return;
    task = await updateTask(deps.db, task.id, { issue_title: payload.issue.title, issue_body: payload.issue.body });
    await clearTrackingNote(deps.db, task.id, TRACKING_NOTE.issueEdited);
    task = await loadTask(deps.db, task.id);
  };
  log.info({ command: payload.name, actor: payload.actor }, "running command");

  switch (payload.name) {
    case "help":
      await reply("help", helpText(payload.appSlug));
      return {};
    case "status":
      await reply("status", await renderStatus(deps.db, task));
      return {};
    case "budget":
      await reply("budget", await renderBudget(deps.db, task, limits));
      return {};
    case "report":
      await reply("report", await renderReport(deps.db, task));
      return {};

    case "stop": {
      if (payload.args === "all") {
        await deps.db
          .insertInto("pauses")
          .values({ installation_id: task.installation_id, paused_by: payload.actor, paused_at: Date.now() })
          .onConflict((oc) => oc.column("installation_id").doUpdateSet({ paused_by: payload.actor, paused_at: Date.now() }))
          .execute();
        await reply("stop", `⏸️ @${payload.actor} paused every new LLM call of this installation. An organisation owner's \`/retry\` resumes.`);
        return {};
      }
      const cancelled = await cancelTaskJobs(deps, task.id, job.id);
      if (state && RESTING_STATES.has(state) && cancelled === 0) {
        await reply("stop", `Nothing is running for #${task.issue_number} (state \`${state}\`).`);
        return {};
      }
      return start("cancel", { reason: `Stopped by @${payload.actor}.` });
    }

    case "retry": {
      if (payload.actorIsOrgOwner) await deps.db.deleteFrom("pauses").where("installation_id", "=", task.installation_id).execute();
      if (!state || !["failed", "budget_exceeded", "blocked", "cancelled"].includes(state)) {
        await reply("retry", `Nothing to retry: #${task.issue_number} is \`${task.stage}\`.`);
        return {};
      }
      if (state === "cancelled") {
        if (!(await allowed("plan"))) return {};
        await adoptIssueText();
        return start("plan");
      }
      const stoppedIn = (await transitionsOf(deps.db, task.id)).filter((t) => t.to_state === state).at(-1)?.from_state;
      const kind = isTaskState(stoppedIn) ? RESUME[stoppedIn] : undefined;
      if (!kind) {
        await reply("retry", `Cannot tell which stage to resume for #${task.issue_number}; label the issue again to start over.`);
        return {};
      }
      if (!(await allowed(kind === "revise" ? "code" : kind))) return {};
      task = await updateTask(deps.db, task.id, { failure_reason: null, blocked_reason: null });
      await adoptIssueText();
      if (kind === "revise") return start("revise", { feedback: { source: "command", text: "", requestedBy: payload.actor } });
      return start(kind);
    }

    case "approve": {
      // One approval answers what is waiting: the plan (then the Coder starts), otherwise protected paths.
      const waitingForPlan = state === "blocked" && Boolean(task.plan) && !task.pr_number && !task.plan_approved_by;
      task = await updateTask(deps.db, task.id, waitingForPlan ? { plan_approved_by: payload.actor } : { approved_by: payload.actor });
      await reply(
        "approve",
        `✅ Approved by @${payload.actor}: ${waitingForPlan ? "the plan — the Coder starts now" : "changes to protected paths may now be made by the Coder"}.`,
      );
      return waitingForPlan ? start("code") : {};
    }

    case "plan":
      if (state && !RESTING_STATES.has(state)) {
        await reply("plan", `#${task.issue_number} is already \`${state}\`; \`/stop\` it first to plan again.`);
        return {};
      }
      task = await updateTask(deps.db, task.id, {
        run: task.run + 1,
        plan: null,
        failure_reason: null,
        blocked_reason: null,
        approved_by: null,
        plan_approved_by: null,
        branch: null,
        pr_number: null,
        pr_url: null,
        review_url: null,
        review_verdict: null,
        reviewed_sha: null,
        tests_conclusion: null,
        rework_cycles: 0,
        triggered_by: payload.actor,
        // A new run: the notes of the last one no longer apply.
        tracking_notes: null,
      });
      await adoptIssueText();
      return start("plan", payload.args ? { notes: payload.args } : {});

    case "code":
      if (task.pr_number && task.plan) {
        if (!payload.args) {
          await reply("code", "Tell the Coder what to change: `/code <instructions>`.");
          return {};
        }
        if (!(await allowed("revise"))) return {};
        await adoptIssueText();
        return start("revise", { feedback: { source: "command", text: payload.args, requestedBy: payload.actor } });
      }
      if (!(await allowed(task.plan ? "code" : "plan"))) return {};
      await adoptIssueText();
      if (!task.plan) return start("plan", payload.args ? { notes: payload.args } : {});
      return start("code", payload.args ? { notes: payload.args } : {});

    case "test":
      if (!task.pr_number || !task.branch) {
        await reply("test", "There is no pull request of Mission Control to test here yet.");
        return {};
      }
      return (await allowed("test")) ? start("test") : {};

    case "review":
      if (!task.pr_number) {
        await reply("review", "There is no pull request to review yet.");
        return {};
      }
      return (await allowed("review")) ? start("review") : {};
  }
}

/**
 * Marks the task's queued and running jobs (other than `exceptJobId`) cancelled. A running
 * job's worker sees it at its next lease renewal and aborts without further effects.
 *
 * @returns how many jobs were cancelled
 */
export async function cancelTaskJobs(deps: Pick<PipelineDeps, "db">, taskId: number, exceptJobId?: number): Promise<number> {
  const result = await deps.db
    .updateTable("jobs")
    .set({ state: "cancelled", finished_at: Date.now(), updated_at: Date.now(), last_error: "cancelled" })
    .where("task_id", "=", taskId)
    .where("state", "in", ["queued", "running"])
    .where("kind", "!=", "command")
    .$if(exceptJobId !== undefined, (qb) => qb.where("id", "!=", exceptJobId ?? -1))
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
