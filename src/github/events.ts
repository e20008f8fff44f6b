import type { Logger } from "pino";
import type { Context } from "probot";

import { parseRepoConfig, REPO_CONFIG_FILE, type RepoConfig } from "../config/repo-config.js";
import { lockKeyFor, type PlanJobPayload } from "../jobs/pipeline.js";
import { enqueueJob } from "../jobs/queue.js";
import type { Db } from "../ledger/db.js";
import { canWrite, isBot } from "./guards.js";

/** What the webhook handlers need: the database, and a way to wake the worker. */
export interface EventDeps {
  db: Db;
  log: Logger;
  maxAttempts: number;
  /** Called after a job was enqueued. */
  onEnqueued(): void;
}

/** Why a delivery did or did not start work; logged, and returned for tests. */
export type TriggerOutcome =
  | "enqueued"
  | "duplicate_delivery"
  | "sender_is_bot"
  | "not_trigger_label"
  | "pull_request"
  | "issue_closed"
  | "no_permission"
  | "already_running";

type IssueTriggerContext = Context<"issues.labeled"> | Context<"issues.opened">;

/**
 * `issues.labeled` with the trigger label, or `issues.opened` already carrying it: guard,
 * then enqueue the first job of the pipeline. No agent runs here — the handler answers
 * GitHub quickly and the worker does the work.
 *
 * Guards, cheapest first: redelivery (local), bot sender (local), trigger label (repository
 * config, read from the default branch), sender's permission (one REST call).
 */
export async function handleIssueTrigger(context: IssueTriggerContext, deps: EventDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const deliveryId = context.id;
  const repository = payload.repository;
  const issue = payload.issue;
  const log = deps.log.child({ deliveryId, repo: repository.full_name, issue: issue.number, event: `issues.${payload.action}` });
  const outcome = await decide();
  log.info({ outcome }, "issue trigger handled");
  return outcome;

  async function decide(): Promise<TriggerOutcome> {
    const seen = await deps.db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", deliveryId).executeTakeFirst();
    if (seen) return "duplicate_delivery";
    if (isBot(payload.sender)) return "sender_is_bot";
    if ((issue as { pull_request?: unknown }).pull_request) return "pull_request";
    if (issue.state === "closed") return "issue_closed";

    const config = await readRepoConfig(context, log);
    const labelled =
      payload.action === "labeled"
        ? payload.label?.name === config.trigger_label
        : (issue.labels ?? []).some((l) => l.name === config.trigger_label);
    if (!labelled) return "not_trigger_label";

    const { data: permission } = await context.octokit.request("GET /repos/{owner}/{repo}/collaborators/{username}/permission", {
      owner: repository.owner.login,
      repo: repository.name,
      username: payload.sender.login,
    });
    if (!canWrite(permission)) return "no_permission";

    const outcome = await enqueuePlan(config);
    if (outcome === "enqueued") deps.onEnqueued();
    return outcome;
  }

  async function enqueuePlan(config: RepoConfig): Promise<TriggerOutcome> {
    const installationId = payload.installation?.id;
    if (!installationId) throw new Error("the delivery has no installation id");
    const owner = repository.owner.login;
    const now = Date.now();
    return deps.db.transaction().execute(async (trx) => {
      const inserted = await trx
        .insertInto("deliveries")
        .values({ delivery_id: deliveryId, event: `issues.${payload.action}`, received_at: now })
        .onConflict((oc) => oc.column("delivery_id").doNothing())
        .executeTakeFirst();
      if (inserted.numInsertedOrUpdatedRows === 0n) return "duplicate_delivery";

      const existing = await trx
        .selectFrom("tasks")
        .selectAll()
        .where("owner", "=", owner)
        .where("repo", "=", repository.name)
        .where("issue_number", "=", issue.number)
        .executeTakeFirst();
      if (existing && existing.stage !== "done" && existing.stage !== "failed") return "already_running";

      const fields = {
        installation_id: installationId,
        stage: "planning",
        triggered_by: payload.sender.login,
        clone_url: repository.clone_url,
        default_branch: repository.default_branch,
        config: JSON.stringify(config),
        plan: null,
        pr_number: null,
        pr_url: null,
        review_url: null,
        review_verdict: null,
        failure_reason: null,
        updated_at: now,
      };
      const task = existing
        ? await trx
            .updateTable("tasks")
            .set({ ...fields, run: existing.run + 1 })
            .where("id", "=", existing.id)
            .returning(["id", "run"])
            .executeTakeFirstOrThrow()
        : await trx
            .insertInto("tasks")
            .values({ ...fields, owner, repo: repository.name, issue_number: issue.number, run: 1, created_at: now })
            .returning(["id", "run"])
            .executeTakeFirstOrThrow();

      const payloadOut: PlanJobPayload = { triggeredAt: new Date(now).toISOString() };
      await enqueueJob(
        trx,
        {
          kind: "plan",
          taskId: task.id,
          installationId,
          lockKey: lockKeyFor(owner, repository.name, issue.number),
          dedupeKey: `task:${task.id}:run:${task.run}:plan`,
          deliveryId,
          payload: payloadOut,
          maxAttempts: deps.maxAttempts,
        },
        now,
      );
      return "enqueued";
    });
  }
}

/**
 * Reads `.github/mission-control.yml` from the default branch through Probot's config plugin.
 * An invalid file falls back to the safe defaults and is logged with the bad keys.
 */
async function readRepoConfig(context: IssueTriggerContext, log: Logger): Promise<RepoConfig> {
  let raw: unknown;
  try {
    raw = await context.config<Record<string, unknown>>(REPO_CONFIG_FILE);
  } catch (err) {
    // Probot's config plugin throws on YAML it cannot parse; transient HTTP errors still propagate.
    if (typeof (err as { status?: unknown }).status === "number") throw err;
    log.warn({ err }, `unreadable .github/${REPO_CONFIG_FILE}; using defaults`);
    return parseRepoConfig(null).config;
  }
  const { config, problems } = parseRepoConfig(raw);
  if (problems.length > 0) log.warn({ problems }, `invalid .github/${REPO_CONFIG_FILE}; using defaults`);
  return config;
}
