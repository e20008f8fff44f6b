import { clearTrackingNote } from "../../store/tasks.js";
import { applyStateLabel, TRACKING_NOTE, writeTracking } from "../reporter.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/** `cancel`: `/stop`, or the issue closed by a person with write permission: → `cancelled`. */
export async function cancelStage(ctx: StageContext): Promise<StageOutcome> {
  const reason = ctx.payload.reason ?? "Cancelled.";
  // "The run continues" no longer holds once it is cancelled.
  await clearTrackingNote(ctx.deps.db, ctx.task.id, TRACKING_NOTE.issueClosed);
  if (ctx.task.stage !== "cancelled") {
    await ctx.move("cancelled", reason, { failure_reason: reason, blocked_reason: null });
  } else {
    await applyStateLabel(ctx.github, ctx.task.issue_number, "cancelled");
    ctx.task = await writeTracking(ctx.deps.db, ctx.github, ctx.task);
  }
  return {};
}
