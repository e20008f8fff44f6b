import type { Context } from "probot";

import { deliveryNonce, issueLockKey, stageDedupeKey } from "../../../domain/jobs.js";
import { cancelTaskJobs, enqueueJob } from "../../../store/queue.js";
import { findTaskByPullRequest } from "../../../store/tasks.js";
import { finish, oncePerDelivery, subjectOf, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/** The app's pull request merged (→ merged) or closed unmerged (→ cancelled): its task's jobs are cancelled and `pr_closed` enqueued. */
export async function handlePullRequestClosed(context: Context<"pull_request.closed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const s = subjectOf(context, payload.pull_request.number);
  const outcome = await oncePerDelivery(deps, s, async (trx) => {
    const task = await findTaskByPullRequest(trx, s.owner, s.repo, s.number);
    if (!task) return "no_task";
    await cancelTaskJobs(trx, task.id);
    await enqueueJob(trx, {
      kind: "pr_closed",
      taskId: task.id,
      installationId: task.installation_id,
      lockKey: issueLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
      dedupeKey: stageDedupeKey(task, "pr_closed", deliveryNonce(s.deliveryId)),
      deliveryId: s.deliveryId,
      payload: { actor: payload.sender.login, merged: Boolean(payload.pull_request.merged) },
      maxAttempts: deps.maxAttempts,
    });
    return "enqueued";
  });
  return finish(deps, s, outcome, "pull request closed handled");
}
