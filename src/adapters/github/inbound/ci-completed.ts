import { CI_FAILED_CONCLUSIONS, CI_PASSED_CONCLUSIONS, ciIntakePayload, isBlockedOnUnfixableCi } from "../../../domain/ci.js";
import { deliveryDedupeKey, issueLockKey } from "../../../domain/jobs.js";
import { isDeliveryRecorded } from "../../../store/deliveries.js";
import { enqueueJob } from "../../../store/queue.js";
import type { Task } from "../../../store/schema.js";
import { currentTrackingNotes, findTaskByPullRequest } from "../../../store/tasks.js";
import { transitionsOf } from "../../../store/transitions.js";
import { type DeliveryContext, finish, type InboundDeps, intakeSubject, oncePerDelivery, subjectOf, type TriggerOutcome } from "./prologue.js";

/** What a completed check suite or workflow run says, as the two handlers read it from the payload. */
export interface CiCompletion {
  source: "check_suite" | "workflow_run";
  headSha: string;
  conclusion: string | null;
  appSlug: string | null;
  checkSuiteId: number;
  workflowRunId: number | null;
  /** The workflow's name, or the check suite's app name. */
  name: string;
  /** Numbers of the pull requests whose head is this commit (same repository only: GitHub leaves forks out). */
  pullRequests: number[];
}

/**
 * The part both CI handlers share. Only the checks the payload and the local database answer
 * run here: a redelivery; a conclusion that is neither a failure nor a pass; the app's own check
 * suite (when its slug is known yet); a pull request that is not the app's (no task with a plan
 * for it); a pass (`success`, `neutral`) unless the task is stopped because a CI revision found
 * nothing to fix (`isBlockedOnUnfixableCi`) — only then can a pass change anything (the intake
 * may move it back to `ready_for_merge`), so every other green run costs nothing.
 * Then the delivery is recorded and an `intake` job (`pipeline/ci-intake.ts`) is queued in the
 * issue's **stage** lane (`issueLockKey`), so it never runs while a stage of that issue runs.
 *
 * The sender is not checked: CI on the app's pull request is usually reported with the app's
 * own bot as the sender (it pushed the commit), unlike comments and reviews.
 */
export async function enqueueCiIntake(context: DeliveryContext, deps: InboundDeps, ci: CiCompletion): Promise<TriggerOutcome> {
  if (await isDeliveryRecorded(deps.db, context.id)) return "duplicate_delivery";
  if (!ci.conclusion) return "ignored";
  const passed = CI_PASSED_CONCLUSIONS.has(ci.conclusion);
  if (!passed && !CI_FAILED_CONCLUSIONS.has(ci.conclusion)) return "ignored";
  const slug = deps.appSlug();
  if (slug && ci.appSlug === slug) return "ignored";
  const owner = context.payload.repository.owner.login;
  const repo = context.payload.repository.name;
  let task: Task | undefined;
  for (const number of ci.pullRequests) {
    const found = await findTaskByPullRequest(deps.db, owner, repo, number);
    if (found?.plan) {
      task = found;
      break;
    }
  }
  if (!task?.pr_number) return "no_task";
  if (passed && !(await awaitingCiRerun(deps, task))) return "ignored";
  const s = subjectOf(context, task.pr_number);
  if (!s.installationId) throw new Error("the delivery has no installation id");
  const payload = ciIntakePayload(
    intakeSubject(s),
    { login: context.payload.sender.login, id: context.payload.sender.id },
    { ...ci, conclusion: ci.conclusion },
    new Date().toISOString(),
  );
  const issue = task;
  const outcome = await oncePerDelivery(deps, s, async (trx) => {
    await enqueueJob(trx, {
      kind: "intake",
      taskId: issue.id,
      installationId: s.installationId,
      lockKey: issueLockKey({ owner: issue.owner, repo: issue.repo, issueNumber: issue.issue_number }),
      dedupeKey: deliveryDedupeKey(s.deliveryId, "intake"),
      deliveryId: s.deliveryId,
      payload,
      maxAttempts: deps.maxAttempts,
    });
    return "enqueued";
  });
  return finish(deps, s, outcome, "CI completion handled", { headSha: ci.headSha, conclusion: ci.conclusion, source: ci.source });
}

/** `true` while `task` is stopped because a CI revision found nothing to fix (its notes and latest transition, read from the local database). */
async function awaitingCiRerun(deps: InboundDeps, task: Task): Promise<boolean> {
  if (task.stage !== "blocked") return false;
  const notes = await currentTrackingNotes(deps.db, task.id);
  return isBlockedOnUnfixableCi(task, notes, (await transitionsOf(deps.db, task.id)).at(-1));
}
