/**
 * Notifications outside GitHub: which events become `notify` jobs for which channels, and how
 * one such job is sent. Events are turned into jobs by a store observer (`store/events.ts`), in
 * the transaction that records them, so each event is enqueued exactly once; a job's dedupe key
 * (`notify:<event key>:<channel>`) keeps it once across retries, restarts and replicas. Sending
 * happens in the worker's notification lane: retried with backoff, never failing a task, and
 * at-least-once per channel — a job that dies after the channel accepted its message sends it
 * again, with the same notification id ({@link notificationId}: webhook delivery id, e-mail
 * Message-ID) so receivers that can deduplicate do; Slack and Telegram may show a duplicate.
 */
import { createHash } from "node:crypto";

import type { Logger } from "pino";

import { channelsFor, type NotificationRoutes, NotificationRoutes as RoutesSchema, type NotificationsConfig } from "../config/notifications.js";
import { isMissionControlError } from "../domain/errors.js";
import { NOTIFY_MAX_ATTEMPTS, type NotificationEvent, type NotificationEventType, notifyDedupeKey, notifyLockKey, type NotifyPayload } from "../domain/jobs.js";
import type { TaskState } from "../domain/task-state.js";
import type { NotificationChannel } from "../ports/notifications.js";
import { renderNotification } from "../render/notification.js";
import type { Db, DbOrTrx } from "../store/db.js";
import { inTransaction } from "../store/db.js";
import { type BudgetAlertFact, observeStore, type StoreObserver, type TransitionFact } from "../store/events.js";
import { digestFigures } from "../store/notifications.js";
import { enqueueJob, type QueuedJob } from "../store/queue.js";
import type { Task } from "../store/schema.js";
import { loadTask } from "../store/tasks.js";
import type { ClaimedJob } from "../worker/worker.js";

/** How a send ended, for `mission_control_notifications_total`. */
export type NotificationOutcome = "sent" | "retry" | "failed";

/** What the notifier needs. */
export interface NotifierOptions {
  config: NotificationsConfig;
  channels: ReadonlyMap<string, NotificationChannel>;
  /** The GitHub web host, `https://github.com` or `${GHE_PROTOCOL}://${GHE_HOST}` (links). */
  githubWebUrl: string;
  log: Logger;
  /** Counts each send's outcome (metrics). */
  onOutcome?: (channel: string, event: NotificationEventType, outcome: NotificationOutcome) => void;
}

/** The task state → the event it raises. (`budget_exceeded`: a `block` limit stopped the task.) */
const STATE_EVENTS: Partial<Record<TaskState, NotificationEventType>> = {
  ready_for_merge: "task_ready_for_merge",
  failed: "task_failed",
  blocked: "task_blocked",
  budget_exceeded: "budget_exceeded",
};

/** The `notifications:` section of a task's repository config snapshot (`undefined` when absent or unreadable). */
function repoRoutesOf(task: Pick<Task, "config">): NotificationRoutes | undefined {
  try {
    const config = JSON.parse(task.config) as { notifications?: { routes?: unknown } } | null;
    const routes = RoutesSchema.safeParse(config?.notifications?.routes);
    return routes.success ? routes.data : undefined;
  } catch {
    return undefined;
  }
}

/** The notification's id: a hash of its dedupe key, the same on every retry (receivers dedupe on it). */
export function notificationId(dedupeKey: string): string {
  return createHash("sha256").update(dedupeKey).digest("hex").slice(0, 32);
}

/**
 * Sends the operator's notifications. {@link Notifier.attach} registers its store observer on a
 * database; {@link Notifier.run} sends one `notify` job.
 */
export class Notifier {
  readonly #options: NotifierOptions;

  constructor(options: NotifierOptions) {
    this.#options = options;
  }

  /** `true` when at least one channel is configured. */
  get enabled(): boolean {
    return this.#options.config.channels.size > 0;
  }

  /** The UTC hour after which the previous day's digest goes out. */
  get digestHourUtc(): number {
    return this.#options.config.digestHourUtc;
  }

  /** Registers the store observer on `db` (in-transaction enqueueing); returns its removal. */
  attach(db: Db): () => void {
    return observeStore(db, "notifications", this.observer());
  }

  /** The store observer: transitions and budget alerts → `notify` jobs, in the recording transaction. */
  observer(): StoreObserver {
    return {
      onTransition: (trx, fact) => this.#onTransition(trx, fact),
      onBudgetAlert: (trx, fact) => this.#onBudgetAlert(trx, fact),
    };
  }

  #subjectOf(task: Pick<Task, "owner" | "repo" | "issue_number" | "pr_number" | "pr_url">) {
    return {
      repository: `${task.owner}/${task.repo}`,
      issueNumber: task.issue_number,
      issueUrl: `${this.#options.githubWebUrl}/${task.owner}/${task.repo}/issues/${task.issue_number}`,
      prNumber: task.pr_number,
      prUrl: task.pr_url,
    };
  }

  async #onTransition(trx: DbOrTrx, fact: TransitionFact): Promise<void> {
    const type = STATE_EVENTS[fact.to];
    if (!type) return;
    const { task } = fact;
    const subject = this.#subjectOf(task);
    const event: NotificationEvent =
      type === "budget_exceeded"
        ? {
            type,
            subject,
            scope: "task",
            scopeLabel: `${subject.repository}#${subject.issueNumber}`,
            period: "stopped",
            spentNanoUsd: null,
            limitNanoUsd: null,
            percent: null,
            resetsAt: null,
            reason: fact.reason,
          }
        : { type: type as "task_ready_for_merge" | "task_failed" | "task_blocked", subject, state: fact.to, reason: fact.reason };
    await this.#enqueue(trx, {
      event,
      eventKey: `transition:${fact.transitionId}`,
      installationId: task.installation_id,
      taskId: task.id,
      repoRoutes: repoRoutesOf(task),
      createdAt: fact.at,
    });
  }

  async #onBudgetAlert(trx: DbOrTrx, fact: BudgetAlertFact): Promise<void> {
    const { alert, subject } = fact;
    // A repository's routes (and the link) apply to limits of that repository only, not to a global or installation limit.
    const local = alert.limit.scope === "repository" || alert.limit.scope === "task" || alert.limit.scope === "agent";
    const task = local ? await loadTask(trx, subject.taskId).catch(() => undefined) : undefined;
    const event: NotificationEvent = {
      type: alert.kind === "threshold" ? "budget_threshold" : "budget_exceeded",
      subject: task ? this.#subjectOf(task) : null,
      scope: alert.limit.scope,
      scopeLabel: alert.scopeLabel,
      period: alert.limit.period,
      spentNanoUsd: alert.spentNanoUsd,
      limitNanoUsd: alert.limitNanoUsd,
      percent: Number.isFinite(alert.percent) ? alert.percent : 100,
      resetsAt: alert.resetsAt,
    };
    await this.#enqueue(trx, {
      event,
      eventKey: `budget-alert:${fact.alertId}`,
      installationId: subject.installationId,
      taskId: task?.id ?? null,
      repoRoutes: task ? repoRoutesOf(task) : undefined,
      createdAt: fact.at,
    });
  }

  /** Enqueues one `notify` job per routed channel (in `trx`); @returns how many were new. */
  async #enqueue(
    trx: DbOrTrx,
    input: {
      event: NotificationEvent;
      eventKey: string;
      installationId: number;
      taskId: number | null;
      repoRoutes: NotificationRoutes | undefined;
      createdAt: number;
    },
  ): Promise<number> {
    // A stand-up without routes of its own goes to the digest's channels.
    const route: NotificationEventType = input.event.type === "standup" && !this.#options.config.routes.standup ? "daily_digest" : input.event.type;
    const { channels, unknown, closed } = channelsFor(this.#options.config, route, input.repoRoutes);
    const repository = input.event.type === "daily_digest" ? undefined : input.event.subject?.repository;
    if (unknown.length > 0) {
      this.#options.log.warn(
        { event: input.event.type, repository, unknown },
        "the repository's notifications.routes names channels the operator did not define; they are ignored",
      );
    }
    if (closed.length > 0) {
      this.#options.log.warn(
        { event: input.event.type, repository, closed },
        "the repository's notifications.routes names channels the operator did not open to repositories (repositories: true); they are ignored",
      );
    }
    let enqueued = 0;
    for (const channel of channels) {
      const payload: NotifyPayload = { channel, eventKey: input.eventKey, createdAt: input.createdAt, event: input.event };
      const id = await enqueueJob(trx, {
        kind: "notify",
        taskId: input.taskId,
        installationId: input.installationId,
        lockKey: notifyLockKey(channel),
        dedupeKey: notifyDedupeKey(input.eventKey, channel),
        payload,
        maxAttempts: NOTIFY_MAX_ATTEMPTS,
      });
      if (id !== null) enqueued += 1;
    }
    return enqueued;
  }

  /**
   * A job whose lease (or heartbeat) lapsed more than once: one `job_stuck` notification per job.
   * Never throws (logged).
   */
  async jobStuck(db: Db, job: QueuedJob & { takeovers?: number }): Promise<void> {
    if (job.kind === "notify") return; // a stuck notification does not notify about itself
    try {
      const task = job.task_id === null ? undefined : await loadTask(db, job.task_id).catch(() => undefined);
      const event: NotificationEvent = {
        type: "job_stuck",
        subject: task ? this.#subjectOf(task) : null,
        jobId: job.id,
        jobKind: job.kind,
        takeovers: job.takeovers ?? 0,
        attempts: job.attempts,
      };
      await inTransaction(db, (trx) =>
        this.#enqueue(trx, {
          event,
          eventKey: `job-stuck:${job.id}`,
          installationId: job.installation_id,
          taskId: task?.id ?? null,
          repoRoutes: task ? repoRoutesOf(task) : undefined,
          createdAt: Date.now(),
        }),
      );
    } catch (err) {
      this.#options.log.error({ err, jobId: job.id }, "could not enqueue the job-stuck notification");
    }
  }

  /**
   * A repository's stand-up was written (orchestrator mode): one `standup` notification on the
   * `standup` routes, or the `daily_digest` ones when the operator gave none (the operator's, plus
   * the repository's own to channels opened to repositories), once per repository and stand-up
   * date. Never throws (logged).
   *
   * @param input.routes - the repository config's `notifications.routes`, if any
   */
  async standupWritten(
    db: Db,
    input: { installationId: number; event: Extract<NotificationEvent, { type: "standup" }>; routes?: NotificationRoutes | undefined; now?: number },
  ): Promise<void> {
    if (!this.enabled) return;
    try {
      await inTransaction(db, (trx) =>
        this.#enqueue(trx, {
          event: input.event,
          eventKey: `standup:${input.event.subject.repository}:${input.event.date}`,
          installationId: input.installationId,
          taskId: null,
          repoRoutes: input.routes,
          createdAt: input.now ?? Date.now(),
        }),
      );
    } catch (err) {
      this.#options.log.error({ err, repository: input.event.subject.repository }, "could not enqueue the stand-up notification");
    }
  }

  /**
   * The daily digest: once the configured UTC hour of day D has passed, one `daily_digest` per
   * installation with activity on day D − 1 (its dedupe key `digest:<installation>:<day>` keeps it
   * once, whichever replica and however often this runs).
   *
   * @returns how many notifications were enqueued
   */
  async enqueueDigests(db: Db, now = Date.now()): Promise<number> {
    if (!this.enabled || (this.#options.config.routes.daily_digest ?? []).length === 0) return 0;
    const today = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), new Date(now).getUTCDate());
    if (now < today + this.#options.config.digestHourUtc * 3_600_000) return 0;
    const from = today - 86_400_000;
    const day = new Date(from).toISOString().slice(0, 10);
    const figures = await digestFigures(db, from, today);
    let enqueued = 0;
    for (const f of figures) {
      const event: NotificationEvent = {
        type: "daily_digest",
        installationId: f.installationId,
        day,
        tasksStarted: f.tasksStarted,
        readyForMerge: f.readyForMerge,
        failed: f.failed,
        spendNanoUsd: f.spendNanoUsd,
        topRepositories: f.repositories.slice(0, 5),
      };
      enqueued += await inTransaction(db, (trx) =>
        this.#enqueue(trx, {
          event,
          eventKey: `digest:${f.installationId}:${day}`,
          installationId: f.installationId,
          taskId: null,
          repoRoutes: undefined,
          createdAt: now,
        }),
      );
    }
    return enqueued;
  }

  /**
   * Sends one `notify` job. A channel the operator has since removed drops it (logged, counted
   * `failed`).
   *
   * @throws {NotificationDeliveryError} when the channel failed: the worker retries a retryable
   *   one with backoff, and fails the job (never its task) otherwise
   */
  async run(job: ClaimedJob & { data: { kind: "notify" } }, signal: AbortSignal, log: Logger): Promise<Record<string, never>> {
    const { channel: name, event, eventKey, createdAt } = job.data.payload;
    const channel = this.#options.channels.get(name);
    if (!channel) {
      log.warn({ channel: name, event: event.type }, "notification dropped: no such channel is configured any more");
      this.#options.onOutcome?.(name, event.type, "failed");
      return {};
    }
    const message = renderNotification(event, createdAt);
    const id = notificationId(job.dedupe_key);
    try {
      await channel.send(message, { signal, idempotencyKey: id });
    } catch (err) {
      const retry = isMissionControlError(err) && err.retryable && job.attempts < job.max_attempts && !signal.aborted;
      this.#options.onOutcome?.(name, event.type, retry ? "retry" : "failed");
      log.warn(
        {
          channel: name,
          channelType: channel.type,
          event: event.type,
          eventKey,
          notificationId: id,
          error: err instanceof Error ? err.message : String(err),
          retry,
        },
        "notification not delivered",
      );
      throw err;
    }
    this.#options.onOutcome?.(name, event.type, "sent");
    log.info({ channel: name, channelType: channel.type, event: event.type, eventKey, notificationId: id }, "notification sent");
    return {};
  }

  /** Closes the channels (SMTP pools). */
  close(): void {
    for (const channel of this.#options.channels.values()) channel.close?.();
  }
}
