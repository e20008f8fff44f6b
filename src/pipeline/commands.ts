import type { Logger } from "pino";

import { repoBudgetLimits, RepoConfig } from "../config/repo-config.js";
import { mergeLimits } from "../domain/budget-rules.js";
import { CI_NOT_FIXABLE_NOTE } from "../domain/ci.js";
import { type CommandJobPayload, commandNonce, type StageKind } from "../domain/jobs.js";
import { helpText } from "../domain/slash-commands.js";
import { canTransition, isResting, isStopped, isTaskState, STAGE_ENTRY_STATE, type TaskState } from "../domain/task-state.js";
import { cancelTaskJobs } from "../store/queue.js";
import { pauseInstallation, resumeInstallation } from "../store/pauses.js";
import { clearTrackingNote, loadTask, startNewRun, updateTask } from "../store/tasks.js";
import { stateBefore } from "../store/transitions.js";
import type { ClaimedJob, JobResult } from "../worker/worker.js";
import { unfixableCiStop } from "./ci-intake.js";
import { renderBudget, renderReport, renderStatus } from "./reports.js";
import { nextJob, type PipelineDeps } from "./pipeline-deps.js";
import { TRACKING_NOTE, writeTracking } from "./reporter.js";
import { runMemoryCommand } from "./memory-commands.js";
import { confirmLearningProposals } from "./memory-proposals.js";
import { isStandupIssue, runProposalCommand } from "./orchestrator.js";
import { isStandupSubject, STANDUP_COMMANDS, standupOnlyReply } from "./standup-commands.js";

export type { CommandJobPayload };

/** A claimed `command` job. */
export type CommandJob = ClaimedJob & { data: { kind: "command"; payload: CommandJobPayload } };

/** The state each stage moves the task into when it starts (`cancel` included). */
const ENTRY_STATE: Partial<Record<StageKind, TaskState>> = { ...STAGE_ENTRY_STATE, cancel: "cancelled" };

/** The stage to resume for a task that stopped while in `state`. */
const RESUME: Partial<Record<TaskState, StageKind>> = { planning: "plan", coding: "code", testing: "test", reviewing: "review", changes_requested: "revise" };

/**
 * Runs one accepted slash-command. Replies (or the tracking comment) say what happened;
 * work it starts is returned as the next job, on the issue's lock, so it runs after whatever
 * job the issue has now.
 */
export async function runCommandJob(deps: PipelineDeps, job: CommandJob, log: Logger): Promise<JobResult> {
  const payload = job.data.payload;
  if (job.task_id === null) throw new Error("a command job needs a task");
  let task = await loadTask(deps.db, job.task_id);
  const github = await deps.github({ installationId: task.installation_id, owner: task.owner, repo: task.repo, log });
  const reply = (topic: string, body: string) =>
    github.ensureComment({ issueNumber: payload.subjectNumber, topic: `command:${payload.commentId}:${topic}`, body });
  const config = RepoConfig.parse(JSON.parse(task.config));
  const limits = mergeLimits(deps.serverLimits, repoBudgetLimits(config.budget, `${task.owner}/${task.repo}`));
  const state = isTaskState(task.stage) ? task.stage : null;
  const start = (kind: StageKind, extra: Record<string, unknown> = {}): JobResult => ({
    next: nextJob(deps, task, kind, { triggeredAt: payload.triggeredAt, actor: payload.actor, ...extra }, commandNonce(payload.commentId), job.delivery_id),
  });
  /** `true` when the stage `kind` may start from the task's state; otherwise says why on GitHub. */
  const allowed = async (kind: StageKind): Promise<boolean> => {
    const target = ENTRY_STATE[kind];
    if (!target || canTransition(state, target) || state === target) return true;
    // A mention was routed to this command: name what was written, not a command nobody typed.
    const asked = payload.mention ? `Your request to \`@${payload.appSlug}\` (run as \`/${payload.name}\`)` : `\`/${payload.name}\``;
    await reply(payload.name, `${asked} cannot run now: #${task.issue_number} is \`${task.stage}\`.`);
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
  log.info({ command: payload.name, actor: payload.actor, mention: payload.mention ?? false }, "running command");
  // The stand-up issue takes only a few commands (the intake answers the others; this catches a job
  // accepted before the stand-up was first written there): one reply, nothing started.
  if (
    !STANDUP_COMMANDS.has(payload.name) &&
    !payload.isPullRequest &&
    (await isStandupSubject(deps.db, { installationId: task.installation_id, owner: task.owner, repo: task.repo }, payload.subjectNumber))
  ) {
    const asked = payload.mention ? `Your request to \`@${payload.appSlug.replace(/[^A-Za-z0-9-]/g, "")}\`` : `\`/${payload.name}\``;
    await reply("standup", standupOnlyReply(asked));
    return {};
  }
  // On the stand-up issue, `/approve <n>` and `/dismiss <n>` decide a proposed follow-up (orchestrator mode).
  if (
    (payload.name === "approve" || payload.name === "dismiss") &&
    (await isStandupIssue(deps.db, task.owner, task.repo, payload.subjectNumber, task.installation_id))
  ) {
    return runProposalCommand(deps, github, task, payload, reply, log);
  }

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
        await pauseInstallation(deps.db, task.installation_id, payload.actor);
        await reply("stop", `⏸️ @${payload.actor} paused every new LLM call of this installation. An organisation owner's \`/retry\` resumes.`);
        return {};
      }
      const cancelled = await cancelTaskJobs(deps.db, task.id, job.id);
      // Stopped on a CI failure the Coder found nothing to fix, the task still waits for a passing re-run of the checks: `/stop` ends that wait.
      if (isResting(state) && cancelled === 0 && (await unfixableCiStop(deps.db, task))) {
        const sha = `\`${(task.head_sha ?? "").slice(0, 7)}\``;
        await clearTrackingNote(deps.db, task.id, CI_NOT_FIXABLE_NOTE);
        task = await updateTask(deps.db, task.id, {
          blocked_reason: `The Coder made no change for the failing checks on ${sha} (its reason is on pull request #${task.pr_number ?? "?"}), and @${payload.actor} stopped the wait for a passing re-run. Comment \`/code <instructions>\` on the pull request for a change.`,
        });
        await writeTracking(deps.db, github, task);
        await reply(
          "stop",
          `⏹️ Stopped by @${payload.actor}: #${task.issue_number} stays \`blocked\` and will no longer return to ready for merge on its own when the checks pass on a re-run of ${sha}. Comment \`/code <instructions>\` on the pull request for a change.`,
        );
        return {};
      }
      if (isResting(state) && cancelled === 0) {
        await reply("stop", `Nothing is running for #${task.issue_number} (state \`${state}\`).`);
        return {};
      }
      return start("cancel", { reason: `Stopped by @${payload.actor}.` });
    }

    case "retry": {
      if (payload.actorIsOrgOwner) await resumeInstallation(deps.db, task.installation_id);
      if (!state || !isStopped(state)) {
        await reply("retry", `Nothing to retry: #${task.issue_number} is \`${task.stage}\`.`);
        return {};
      }
      if (state === "cancelled") {
        if (!(await allowed("plan"))) return {};
        await adoptIssueText();
        return start("plan");
      }
      // The Coder found nothing to fix for a CI failure: running it again on the plan would change nothing.
      const ciStop = await unfixableCiStop(deps.db, task);
      if (ciStop) {
        const rerun = ciStop.armed ? `re-run the failed checks (once they pass, #${task.issue_number} is ready for merge again), ` : "";
        await reply(
          "retry",
          `The Coder found nothing to fix for the failing checks on \`${(task.head_sha ?? "").slice(0, 7)}\`, so \`/retry\` does not run it again. To go on: ${rerun}comment \`/code <instructions>\` on the pull request for a change, or merge the pull request.`,
        );
        return {};
      }
      const stoppedIn = await stateBefore(deps.db, task.id, state);
      const kind = stoppedIn ? RESUME[stoppedIn] : undefined;
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
      if (state && !isResting(state)) {
        await reply("plan", `#${task.issue_number} is already \`${state}\`; \`/stop\` it first to plan again.`);
        return {};
      }
      // A new run, by the rule every trigger shares (the Co-authored-by trailer names who asked now).
      task = await startNewRun(deps.db, task.id, { login: payload.actor, id: payload.actorId ?? null });
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

    case "learn":
    case "memory":
    case "forget":
      await runMemoryCommand({ db: deps.db, task, payload, reply, confirm: () => confirmLearningProposals(deps.db, github, task, log) });
      return {};

    case "dismiss":
      await reply("dismiss", "`/dismiss <n>` drops a proposed follow-up: use it on the stand-up issue, where the proposals are listed.");
      return {};
  }
}
