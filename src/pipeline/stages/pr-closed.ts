import { removeIssueWorkspaces } from "../../workspace/workspaces.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/** `pr_closed`: the pull request was merged (→ `merged`) or closed unmerged (→ `cancelled`); the issue's clones are removed. */
export async function prClosedStage(ctx: StageContext): Promise<StageOutcome> {
  const merged = ctx.payload.merged === true;
  const task = ctx.task;
  if (merged) {
    await ctx.move("merged", "pull request merged", { finished_at: Date.now() });
  } else if (task.stage !== "cancelled") {
    await ctx.move("cancelled", "pull request closed without merging", {
      blocked_reason: null,
      failure_reason: "The pull request was closed without merging.",
    });
  }
  await removeIssueWorkspaces(ctx.deps.workspacesDir, task.owner, task.repo, task.issue_number);
  return {};
}
