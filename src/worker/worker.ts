import { randomUUID } from "node:crypto";

import type { Logger } from "pino";

import { isMissionControlError, JobAbortedError } from "../domain/errors.js";
import type { Db } from "../store/db.js";
import { inTransaction } from "../store/db.js";
import { type JobData, parseJobData } from "../domain/jobs.js";
import { redactSecrets } from "../domain/redact.js";
import { type JobLane, type JobQueue, type JobSpec, type QueuedJob, queueOf } from "../store/queue.js";

/** What running a job produced: follow-up jobs to enqueue atomically with its completion. */
export interface JobResult {
  next?: JobSpec | undefined;
}

/** A claimed job with its kind and payload parsed (`domain/jobs.ts`): nothing downstream casts its JSON. */
export type ClaimedJob = QueuedJob & { data: JobData };

/** Runs one claimed job. `signal` aborts when the lease is lost or the worker stops hard. */
export type JobRunner = (job: ClaimedJob, signal: AbortSignal, log: Logger) => Promise<JobResult>;

/** Called once when a job fails for good, with a short reason fit for the issue and the error. */
export type JobFailureHandler = (job: QueuedJob, reason: string, error: unknown, log: Logger) => Promise<void>;

/** Settings of {@link Worker}. Times in milliseconds. */
export interface WorkerOptions {
  db: Db;
  log: Logger;
  run: JobRunner;
  onFailed: JobFailureHandler;
  concurrency: number;
  pollMs: number;
  /**
   * How long a claim holds without a heartbeat, in milliseconds: the SQLite lease, or pg-boss's
   * `heartbeatSeconds` on PostgreSQL. The worker renews it every third of that.
   */
  leaseMs: number;
  retryBaseMs: number;
  retryMaxMs: number;
  /** What its log lines call a job (`job`, or `intake` for the intake lane). */
  noun?: string;
  /** The kinds this worker claims (default: every kind). */
  lane?: JobLane;
  /** Identifies this process's leases; random by default. */
  owner?: string;
  /** Observes each attempt: how it ended and its wall time in seconds (metrics). */
  onJobFinished?: (job: QueuedJob, state: "succeeded" | "retry" | "failed" | "aborted", seconds: number) => void;
  /**
   * Called (not awaited) when a claimed job has been taken over more than once — its lease or
   * heartbeat lapsed repeatedly (`QueuedJob.takeovers`): its worker keeps dying or hanging.
   */
  onJobStuck?: (job: QueuedJob) => Promise<void>;
}

/** How a failed attempt is handled. */
export interface FailureDecision {
  retry: boolean;
  /** Milliseconds until the next attempt. */
  delayMs: number;
  /** Short, human, secret-free reason. */
  reason: string;
}

/**
 * The one translator from errors to outcomes: typed errors say whether they are retryable
 * (GitHub 5xx and rate limits, Anthropic 429/529/5xx, network errors) and how long to wait;
 * anything else is permanent. Exponential backoff with ±20 % jitter, honouring `retry-after`.
 *
 * @param attempts - attempts made so far, including the one that failed
 */
export function decideFailure(err: unknown, attempts: number, maxAttempts: number, base: number, max: number): FailureDecision {
  const typed = isMissionControlError(err) ? err : undefined;
  const reason = redactSecrets(typed?.userMessage ?? "An internal error stopped the job; the operator's logs have the details.").slice(0, 500);
  if (!typed?.retryable || attempts >= maxAttempts) return { retry: false, delayMs: 0, reason };
  const backoff = Math.min(max, base * 2 ** (attempts - 1) * (0.8 + Math.random() * 0.4));
  return { retry: true, delayMs: Math.max(typed.retryAfterMs ?? 0, Math.round(backoff)), reason };
}

/**
 * Claims jobs from the durable queue and runs them: at most `concurrency` at once, and (by the
 * queue's lock key) at most one per issue. Leases are renewed while a job runs; a job whose
 * worker died is reclaimed after its lease expires. Completion and the next stage's enqueue
 * happen in one transaction, fenced by the lease.
 */
export class Worker {
  readonly owner: string;
  readonly #options: WorkerOptions;
  readonly #queue: JobQueue;
  readonly #running = new Map<string, { job: QueuedJob; promise: Promise<void>; abort: AbortController }>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  #ticking: Promise<void> | undefined;
  #tickAgain = false;

  constructor(options: WorkerOptions) {
    this.#options = options;
    this.#queue = queueOf(options.db);
    this.owner = options.owner ?? `worker-${randomUUID()}`;
  }

  /** Starts polling. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#schedule(0);
  }

  /** Asks for an immediate look at the queue (after an enqueue in this process). */
  notify(): void {
    if (!this.#stopped) void this.#tick();
  }

  /** Number of jobs this worker is running. */
  get activeJobs(): number {
    return this.#running.size;
  }

  /**
   * Stops claiming jobs and waits up to `deadlineMs` (milliseconds) for running ones; after
   * that their signals abort and their leases are released, so the next start (or another
   * worker) resumes them at once.
   */
  async stop(deadlineMs = 30_000): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#ticking;
    const all = Promise.all([...this.#running.values()].map((r) => r.promise));
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), deadlineMs);
    });
    const outcome = await Promise.race([all.then(() => "done" as const), deadline]);
    clearTimeout(timer);
    if (outcome === "timeout") {
      const stranded = [...this.#running.values()].map((r) => r.job);
      for (const { abort } of this.#running.values()) abort.abort(new JobAbortedError("worker stopped"));
      // Hand the leases back so the next start resumes these jobs at once, not after expiry.
      for (const job of stranded) {
        await this.#queue
          .release(this.#options.db, job, this.owner)
          .catch((err: unknown) => this.#options.log.warn({ err, jobId: job.id }, "releasing a lease failed"));
      }
    }
  }

  /** Resolves when this worker has no job running. */
  async idle(): Promise<void> {
    while (this.#running.size > 0) await Promise.all([...this.#running.values()].map((r) => r.promise));
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#tick(), ms);
    this.#timer.unref?.();
  }

  #tick(): Promise<void> {
    if (this.#ticking) {
      this.#tickAgain = true;
      return this.#ticking;
    }
    this.#ticking = this.#claimAvailable().finally(() => {
      this.#ticking = undefined;
      this.#schedule(this.#options.pollMs);
    });
    return this.#ticking;
  }

  async #claimAvailable(): Promise<void> {
    try {
      do {
        this.#tickAgain = false;
        while (!this.#stopped && this.#running.size < this.#options.concurrency) {
          const job = await this.#queue.claim(this.#options.db, this.owner, this.#options.leaseMs, this.#options.lane ?? {});
          if (!job) break;
          if (this.#stopped) {
            // stop() came while the claim was in flight: hand the job straight back.
            await this.#queue.release(this.#options.db, job, this.owner);
            break;
          }
          this.#launch(job);
        }
      } while (this.#tickAgain && !this.#stopped);
    } catch (err) {
      this.#options.log.error({ err }, "claiming a job failed");
    }
  }

  #launch(job: QueuedJob): void {
    const abort = new AbortController();
    const promise = this.#execute(job, abort).finally(() => {
      this.#running.delete(job.id);
      this.notify();
    });
    this.#running.set(job.id, { job, promise, abort });
  }

  async #execute(job: QueuedJob, abort: AbortController): Promise<void> {
    const { db, leaseMs } = this.#options;
    // Lock keys are `owner/repo#n` or `cmd:owner/repo#n` (domain/jobs.ts); the lane prefix is not part of the repository.
    const [repo, issue] = job.lock_key.replace(/^cmd:/, "").split("#");
    const log = this.#options.log.child({
      deliveryId: job.delivery_id,
      jobId: job.id,
      job: job.kind,
      repo,
      issue: Number(issue),
      lockKey: job.lock_key,
      attempt: job.attempts,
    });
    const heartbeat = setInterval(
      () => {
        // A stopped (or killed) worker stops renewing: its lease expires and another worker resumes the job.
        if (abort.signal.aborted) return clearInterval(heartbeat);
        this.#queue.heartbeat(db, job, this.owner, leaseMs).then(
          (held) => {
            if (!held) abort.abort(new JobAbortedError("lease lost"));
          },
          (err) => log.warn({ err }, "lease renewal failed"),
        );
      },
      Math.max(50, Math.floor(leaseMs / 3)),
    );
    heartbeat.unref?.();
    if ((job.takeovers ?? 0) > 1 && this.#options.onJobStuck) {
      log.warn({ takeovers: job.takeovers }, "job taken over again after its lease lapsed: it is stuck");
      void this.#options.onJobStuck(job).catch((err: unknown) => log.error({ err }, "the job-stuck handler failed"));
    }
    const started = Date.now();
    if (job.attempts > job.max_attempts) {
      // Its lease kept expiring (the process died each time, e.g. out of memory): stop reclaiming it.
      const reason = `The job was interrupted ${job.attempts - 1} times without finishing; it was stopped. Comment \`/retry\` to try again.`;
      clearInterval(heartbeat);
      if (await inTransaction(db, (trx) => this.#queue.fail(trx, job, this.owner, reason))) {
        log.error({ attempts: job.attempts }, "job abandoned after repeated interruptions");
        await this.#options.onFailed(job, reason, new Error(reason), log).catch((err: unknown) => log.error({ err }, "failure handler failed"));
      }
      return;
    }
    log.info(`${this.#options.noun ?? "job"} started`);
    try {
      // Parsed when claimed: a malformed payload fails the job (JobPayloadError, not retryable), never a cast.
      const claimed: ClaimedJob = { ...job, data: parseJobData(job.kind, job.payload) };
      const result = await this.#options.run(claimed, abort.signal, log);
      if (abort.signal.aborted) throw abort.signal.reason;
      const committed = await inTransaction(db, async (trx) => {
        if (!(await this.#queue.complete(trx, job, this.owner))) return false;
        if (result.next) await this.#queue.enqueue(trx, result.next);
        return true;
      });
      this.#options.onJobFinished?.(job, committed ? "succeeded" : "aborted", (Date.now() - started) / 1000);
      if (committed) log.info({ durationMs: Date.now() - started, next: result.next?.kind }, `${this.#options.noun ?? "job"} succeeded`);
      else log.warn("job finished after its lease was lost; its result was discarded");
    } catch (err) {
      if (abort.signal.aborted) {
        this.#options.onJobFinished?.(job, "aborted", (Date.now() - started) / 1000);
        log.warn({ reason: String(abort.signal.reason) }, "job aborted; another worker will resume it after the lease expires");
        return;
      }
      const retried = await this.#handleError(job, err, log);
      this.#options.onJobFinished?.(job, retried ? "retry" : "failed", (Date.now() - started) / 1000);
    } finally {
      clearInterval(heartbeat);
    }
  }

  /** @returns `true` when the job was put back for a retry */
  async #handleError(job: QueuedJob, err: unknown, log: Logger): Promise<boolean> {
    const { db, retryBaseMs, retryMaxMs } = this.#options;
    if (err instanceof JobAbortedError) {
      log.warn({ reason: err.message }, "job aborted; it will be picked up again");
      return true;
    }
    const decision = decideFailure(err, job.attempts, job.max_attempts, retryBaseMs, retryMaxMs);
    const detail = redactSecrets(err instanceof Error ? `${err.name}: ${err.message}` : String(err)).slice(0, 2000);
    if (decision.retry) {
      const held = await inTransaction(db, (trx) => this.#queue.retry(trx, job, this.owner, Date.now() + decision.delayMs, detail));
      log.warn({ err, delayMs: decision.delayMs, held }, "job failed; retrying");
      return true;
    }
    const held = await inTransaction(db, (trx) => this.#queue.fail(trx, job, this.owner, detail));
    log.error({ err, held }, "job failed");
    if (!held) return false;
    try {
      await this.#options.onFailed(job, decision.reason, err, log);
    } catch (hookErr) {
      log.error({ err: hookErr }, "failure handler failed");
    }
    return false;
  }
}
