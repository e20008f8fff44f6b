import type { Logger } from "pino";

import { PausedError } from "../../domain/errors.js";
import { type BudgetLimit, estimateInputTokens, estimateWorstCaseNanoUsd, mergeLimits } from "../../domain/budget-rules.js";
import type { PriceTable } from "../../domain/pricing.js";
import { repoBudgetLimits } from "../../config/repo-config.js";
import type { Llm, MessageRequest, UsageContext, UsageRecord } from "../../ports/llm.js";
import { release, reserve } from "../../store/budgets.js";
import type { Db } from "../../store/db.js";
import { pauseOf } from "../../store/pauses.js";
import { recordUsageAndSettle } from "../../store/usage.js";
import { createRecordingLlm } from "./client.js";

type Anthropic = Parameters<typeof createRecordingLlm>[0];

/** What {@link createMeteredLlm} needs besides the call's context. */
export interface MeteringOptions {
  db: Db;
  anthropic: Anthropic;
  prices: PriceTable;
  /** Limits from the server environment: ceilings the repository config cannot raise. */
  serverLimits: readonly BudgetLimit[];
  /** PAUSE=1: the operator's kill switch. */
  pausedByOperator: boolean;
  log: Logger;
}

/**
 * The `Llm` every agent gets: before each Messages API call it refuses when paused, then
 * reserves the call's worst case (estimated input tokens × input price + max_tokens × output
 * price) against every applicable budget limit in one SQLite transaction; after the call the
 * real usage is written to the ledger and the reservation settled in one transaction (a failed
 * call releases it). Alerts raised by the reservation are posted through `context.onAlert`.
 *
 * @throws {PausedError} when LLM calls are paused (no reservation, no request)
 * @throws {BudgetExceededError} when a blocking limit would be exceeded (no request)
 */
export function createMeteredLlm(options: MeteringOptions, context: UsageContext): Llm {
  const { db, prices } = options;
  const repoLimits = repoBudgetLimits(context.config.budget, context.repository);
  const limits = mergeLimits(options.serverLimits, repoLimits);
  const subject = {
    installationId: context.installationId,
    repository: context.repository,
    agent: context.agent,
    taskId: context.taskId,
    subjectNumber: context.subjectNumber,
    jobId: context.jobId,
  };

  return {
    async createMessage(request: MessageRequest, callOptions) {
      if (options.pausedByOperator) throw new PausedError("PAUSE=1 in the server environment");
      const pause = await pauseOf(db, context.installationId);
      if (pause) throw new PausedError(`/stop all by @${pause.pausedBy}`);

      const price = prices.nanoPriceOf(request.model);
      const amountNanoUsd = estimateWorstCaseNanoUsd(price, estimateInputTokens(JSON.stringify(request)), request.max_tokens);
      const reservation = await reserve(db, { subject, limits, amountNanoUsd });
      for (const alert of reservation.alerts) {
        await context.onAlert(alert).catch((err: unknown) => options.log.warn({ err }, "posting a budget alert failed"));
      }

      const record = (usage: UsageRecord) =>
        recordUsageAndSettle(
          db,
          {
            ...usage,
            // The reservation's time, not the answer's: cost and hold stay in the same budget window.
            created_at: reservation.createdAt,
            installation_id: context.installationId,
            repository: context.repository,
            subject_number: context.subjectNumber,
            task_id: context.taskId,
            job_id: context.jobId,
            agent: context.agent,
          },
          reservation.id,
        );
      let billed = false;
      const tracking = createRecordingLlm(options.anthropic, prices, async (usage) => {
        billed = true; // the API answered: this call is paid for whatever happens next
        await record(usage);
      });
      try {
        return await tracking.createMessage(request, callOptions);
      } catch (err) {
        // Release only a call that was never answered; a billed call whose ledger write failed
        // keeps its reservation held, so the spend still counts against the limits.
        if (!billed) await release(db, reservation.id).catch((releaseErr: unknown) => options.log.warn({ err: releaseErr }, "releasing a reservation failed"));
        throw err;
      }
    },
  };
}
