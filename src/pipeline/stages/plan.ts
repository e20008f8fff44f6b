import { planIssue, renderPlanMarkdown, snapshotRepository } from "../../agents/architect.js";
import { loadRepositoryGuidance } from "../../agents/load-instructions.js";
import { removeWorkspace } from "../../workspace/git.js";
import { workspaceDir } from "../../workspace/workspaces.js";
import { withRepositoryMemory } from "../repository-memory.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/**
 * `plan`: state `planning`. Unless the task already has a stored plan: a shallow clone of the
 * default branch, a repository snapshot and its repository-wide guidance (AGENTS.md and the
 * like, `loadRepositoryGuidance`), the Architect's plan stored on the task. Then the plan
 * comment is created or updated. Next: `code`, or `blocked` until `/approve` of the plan.
 */
export async function planStage(ctx: StageContext): Promise<StageOutcome> {
  if (!ctx.task.started_at) await ctx.save({ started_at: Date.now() });
  await ctx.move("planning", "planning started");
  const task = ctx.task;
  if (!task.plan) {
    const issue = await ctx.issueForPrompt();
    const dir = workspaceDir(ctx.deps.workspacesDir, task.owner, task.repo, task.issue_number, `plan-${ctx.job.id}`);
    const workspace = await ctx.deps.clone({ cloneUrl: task.clone_url, dir, token: await ctx.github.createGitToken(), branch: task.default_branch, depth: 1 });
    try {
      const snapshot = await snapshotRepository(workspace, issue, { fullName: `${task.owner}/${task.repo}`, defaultBranch: task.default_branch });
      const guidance = await withRepositoryMemory(
        ctx.deps.db,
        ctx.task,
        ctx.config,
        await loadRepositoryGuidance(ctx.github, {
          ref: task.default_branch,
          settings: ctx.config.instructions,
          agent: "architect",
          paths: null,
        }),
        null,
        { github: ctx.github, log: ctx.log },
      );
      const plan = await planIssue(ctx.runtime("architect"), issue, snapshot, ctx.notes(), guidance);
      await ctx.save({ plan: JSON.stringify(plan) });
    } finally {
      await removeWorkspace(dir);
    }
  }
  const comment = await ctx.github.ensureComment({
    issueNumber: task.issue_number,
    topic: "plan",
    body: renderPlanMarkdown(ctx.plan()),
    commentId: ctx.task.plan_comment_id,
  });
  await ctx.save({ plan_comment_id: comment.id, plan_url: comment.htmlUrl });
  ctx.log.info({ commentId: comment.id }, "plan posted");
  if (ctx.config.require_plan_approval && !ctx.task.plan_approved_by) {
    await ctx.move("blocked", "waiting for /approve of the plan", {
      blocked_reason: "The repository requires a maintainer's `/approve` of the plan before the Coder starts.",
    });
    return {};
  }
  return ctx.next("code");
}
