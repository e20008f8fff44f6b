import { writeTracking } from "../reporter.js";
import type { StageContext } from "../stage-context.js";
import type { StageOutcome } from "../pipeline-deps.js";

/**
 * `tracking`: re-renders the tracking comment (a note was added while a stage runs). Cosmetic:
 * never fails the task (the next stage renders the notes again). Only an existing comment is
 * edited; the stage that creates it renders the notes too.
 */
export async function trackingStage(ctx: StageContext): Promise<StageOutcome> {
  if (ctx.task.tracking_comment_id) {
    ctx.task = await writeTracking(ctx.deps.db, ctx.github, ctx.task).catch((err: unknown) => {
      ctx.log.warn({ err }, "re-rendering the tracking comment failed");
      return ctx.task;
    });
  }
  return {};
}
