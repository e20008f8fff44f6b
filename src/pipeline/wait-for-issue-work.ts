/**
 * An intake that cannot act yet because the issue's work is under way (a CI failure while the
 * app's own tests run, a review while the Coder revises) is queued again behind that work: an
 * `intake` job in the issue's stage lane (`issueLockKey`), so it never runs while a stage of the
 * issue runs, with a growing `run_after`, at most {@link INTAKE_MAX_WAITS} times. Used by the CI
 * intake (`ci-intake.ts`) and the review intake (`intake.ts`).
 */
import type { Logger } from "pino";

import { type IntakePayload, issueLockKey } from "../domain/jobs.js";
import { enqueueJob } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import type { IntakeJob, IntakeOutcome } from "./intake.js";
import type { PipelineDeps } from "./pipeline-deps.js";

/** The intake payloads that count their waits. */
export type WaitingIntakePayload = Extract<IntakePayload, { waits: number }>;

/** How many times an intake waits for the issue's work before giving up, and the longest wait (ms). */
export const INTAKE_MAX_WAITS = 30;
const INTAKE_WAIT_MAX_MS = 60_000;

/**
 * Delay before the `waits`-th re-check of a busy task, in milliseconds: 2 s doubling up to 60 s
 * (about 26 minutes over {@link INTAKE_MAX_WAITS} waits).
 */
export function intakeWaitDelayMs(waits: number): number {
  return Math.min(INTAKE_WAIT_MAX_MS, 2_000 * 2 ** Math.min(waits, 10));
}

/** The least time an intake has waited when it gives up: the sum of its {@link INTAKE_MAX_WAITS} delays (about 26 minutes). */
export const INTAKE_GIVE_UP_AFTER_MS = Array.from({ length: INTAKE_MAX_WAITS }, (_, waits) => intakeWaitDelayMs(waits)).reduce((a, b) => a + b, 0);

/**
 * Queues this intake again after the issue's queued work (same lock key as its stages, a later
 * `run_after`; dedupe key `<event>-wait:<chain>:<wait>`), or — after
 * {@link INTAKE_MAX_WAITS} waits — gives up (`ignored`, logged as a warning, then `onGiveUp`:
 * the review intake says so on the pull request).
 *
 * @param how.what how the logs name the delivery ("CI failure", "review")
 * @param how.fields what the logs say about it (head sha, review id)
 * @param how.chain what one chain of waits is for (default: the delivery): intakes of one chain
 *   share their dedupe keys, so several deliveries about the same thing (a review and each of its
 *   inline comments) wait as one
 * @param how.onGiveUp what else giving up does (after the log line); an error fails the intake,
 *   whose retry gives up again, so it must be idempotent
 */
export async function waitForIssueWork(
  deps: PipelineDeps,
  job: IntakeJob,
  task: Pick<Task, "id" | "owner" | "repo" | "issue_number" | "stage">,
  p: WaitingIntakePayload,
  log: Logger,
  how: { what: string; fields: Record<string, unknown>; chain?: string; onGiveUp?: () => Promise<void> },
): Promise<IntakeOutcome> {
  const { what, fields, chain = job.delivery_id ?? `job-${job.id}`, onGiveUp } = how;
  if (p.waits >= INTAKE_MAX_WAITS) {
    log.warn({ reason: "waited_too_long", ...fields, waits: p.waits, stage: task.stage }, `${what}: no revision`);
    await onGiveUp?.();
    return "ignored";
  }
  const delayMs = intakeWaitDelayMs(p.waits);
  await enqueueJob(deps.db, {
    kind: "intake",
    taskId: task.id,
    installationId: job.installation_id,
    lockKey: issueLockKey({ owner: task.owner, repo: task.repo, issueNumber: task.issue_number }),
    dedupeKey: `${p.event}-wait:${chain}:${p.waits + 1}`,
    deliveryId: job.delivery_id,
    payload: { ...p, waits: p.waits + 1 },
    maxAttempts: deps.maxAttempts,
    runAfter: Date.now() + delayMs,
  });
  log.info({ ...fields, stage: task.stage, waits: p.waits + 1, delayMs }, `${what}: the issue has work queued; looking again after it`);
  return "enqueued";
}
