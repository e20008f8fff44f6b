import type { Logger } from "pino";

import { isBot, type Sender } from "../../../domain/guards.js";
import { commandLockKey, deliveryDedupeKey, type IntakePayload } from "../../../domain/jobs.js";
import type { Db } from "../../../store/db.js";
import { inTransaction } from "../../../store/db.js";
import { isDeliveryRecorded, recordDelivery } from "../../../store/deliveries.js";
import { enqueueJob } from "../../../store/queue.js";

/** What the webhook handlers need: the database, and a way to wake the worker. No GitHub client. */
export interface InboundDeps {
  db: Db;
  log: Logger;
  maxAttempts: number;
  /** The app's slug once known (resolved in the background at start-up), for `@<slug> command` mentions. */
  appSlug(): string | undefined;
  /** Called after a job was enqueued. */
  onEnqueued(): void;
}

/** Why a delivery did or did not start work; logged, counted in `mc_webhook_outcomes_total`, returned for tests. */
export type TriggerOutcome =
  "enqueued" | "duplicate_delivery" | "sender_is_bot" | "not_trigger_label" | "pull_request" | "issue_closed" | "not_a_command" | "no_task" | "ignored";

/** The fields every handled delivery shares: delivery id, event, installation, repository, number. */
export interface Subject {
  deliveryId: string;
  event: string;
  installationId: number;
  owner: string;
  repo: string;
  number: number;
  cloneUrl: string;
  defaultBranch: string;
}

/** A delivery as the handlers read it (Probot's `Context`, narrowed to what every event has). */
export interface DeliveryContext {
  id: string;
  name: string;
  payload: {
    action?: string;
    installation?: { id: number };
    repository: { owner: { login: string }; name: string; clone_url: string; default_branch: string };
    sender: Sender & { id: number };
  };
}

/** The delivery's subject: `number` is the issue's or the pull request's. */
export function subjectOf(context: DeliveryContext, number: number): Subject {
  const { payload } = context;
  return {
    deliveryId: context.id,
    event: `${context.name}.${payload.action ?? ""}`,
    installationId: payload.installation?.id ?? 0,
    owner: payload.repository.owner.login,
    repo: payload.repository.name,
    number,
    cloneUrl: payload.repository.clone_url,
    defaultBranch: payload.repository.default_branch,
  };
}

function logFor(deps: InboundDeps, s: Subject): Logger {
  return deps.log.child({ deliveryId: s.deliveryId, repo: `${s.owner}/${s.repo}`, issue: s.number, event: s.event });
}

/** Logs a handler's outcome and wakes the worker when it enqueued work. */
export function finish(deps: InboundDeps, s: Subject, outcome: TriggerOutcome, message: string, fields: Record<string, unknown> = {}): TriggerOutcome {
  logFor(deps, s).info({ outcome, ...fields }, message);
  if (outcome === "enqueued") deps.onEnqueued();
  return outcome;
}

/**
 * The shared prologue, before any other check: a redelivery of an `X-GitHub-Delivery` already
 * recorded is `duplicate_delivery`; a bot sender (this app included) is `sender_is_bot`.
 *
 * @returns the outcome that ends the handler, or `null` to go on
 */
export async function prologue(deps: InboundDeps, context: DeliveryContext): Promise<TriggerOutcome | null> {
  if (await isDeliveryRecorded(deps.db, context.id)) return "duplicate_delivery";
  if (isBot(context.payload.sender)) return "sender_is_bot";
  return null;
}

/**
 * Records the delivery and runs `body` in one transaction; a second delivery with the same id
 * (a race with the prologue's check) does nothing and is `duplicate_delivery`.
 *
 * @returns what `body` returned (a {@link TriggerOutcome}, or the handler's own outcome), or `duplicate_delivery`
 */
export async function oncePerDelivery<T extends string = TriggerOutcome>(
  deps: InboundDeps,
  s: Subject,
  body: (trx: Db) => Promise<T>,
): Promise<T | "duplicate_delivery"> {
  return inTransaction(deps.db, async (trx) => {
    if (!(await recordDelivery(trx, s.deliveryId, s.event))) return "duplicate_delivery";
    return body(trx);
  });
}

/**
 * Records the delivery and enqueues an `intake` job in the issue's command lane (`issueNumber`:
 * the task's issue when the delivery is about its pull request): the worker makes the checks
 * that need GitHub (permission, repository config, reactions) first thing.
 *
 * @throws {Error} when the payload has no installation id (GitHub App deliveries always have one)
 */
export async function enqueueIntake(
  deps: InboundDeps,
  s: Subject,
  payload: IntakePayload,
  taskId: number | null = null,
  issueNumber: number = s.number,
): Promise<TriggerOutcome> {
  if (!s.installationId) throw new Error("the delivery has no installation id");
  return oncePerDelivery(deps, s, async (trx) => {
    await enqueueJob(trx, {
      kind: "intake",
      taskId,
      installationId: s.installationId,
      // The issue's command lane, also for a delivery about its pull request: commands on the
      // issue and on its PR are taken in the order they arrived.
      lockKey: commandLockKey({ owner: s.owner, repo: s.repo, issueNumber }),
      dedupeKey: deliveryDedupeKey(s.deliveryId, "intake"),
      deliveryId: s.deliveryId,
      payload,
      maxAttempts: deps.maxAttempts,
    });
    return "enqueued";
  });
}

/**
 * A repository-level delivery (no issue: a push): a redelivery is answered
 * `duplicate_delivery`; otherwise the delivery is recorded and one `intake` job queued in
 * `lockKey`'s lane, once per delivery, and the outcome logged with `message`.
 *
 * @throws {Error} when the payload has no installation id (GitHub App deliveries always have one)
 */
export async function enqueueRepositoryIntake(
  deps: InboundDeps,
  delivery: {
    id: string;
    event: string;
    installationId: number | undefined;
    owner: string;
    repository: { name: string; clone_url: string; default_branch: string };
  },
  intake: { payload: IntakePayload; lockKey: string },
  log: { message: string; fields: Record<string, unknown> },
): Promise<TriggerOutcome> {
  if (await isDeliveryRecorded(deps.db, delivery.id)) return "duplicate_delivery";
  const installationId = delivery.installationId ?? 0;
  if (!installationId) throw new Error("the delivery has no installation id");
  const s: Subject = {
    deliveryId: delivery.id,
    event: delivery.event,
    installationId,
    owner: delivery.owner,
    repo: delivery.repository.name,
    number: 0,
    cloneUrl: delivery.repository.clone_url,
    defaultBranch: delivery.repository.default_branch,
  };
  const outcome = await oncePerDelivery(deps, s, async (trx) => {
    await enqueueJob(trx, {
      kind: "intake",
      taskId: null,
      installationId,
      lockKey: intake.lockKey,
      dedupeKey: deliveryDedupeKey(delivery.id, "intake"),
      deliveryId: delivery.id,
      payload: intake.payload,
      maxAttempts: deps.maxAttempts,
    });
    return "enqueued";
  });
  return finish(deps, s, outcome, log.message, log.fields);
}

/** The intake payload's subject. */
export function intakeSubject(s: Subject) {
  return { owner: s.owner, repo: s.repo, number: s.number, cloneUrl: s.cloneUrl, defaultBranch: s.defaultBranch };
}
