import type { Context } from "probot";

import type { RepositoryRename } from "../../../domain/repository.js";
import { type RenameResult, renameRepository } from "../../../store/repository-rename.js";
import { type InboundDeps, oncePerDelivery, type Subject } from "./prologue.js";

/** What {@link handleRepositoryRenamed} did; logged, counted in `mc_webhook_outcomes_total`, returned for tests. */
export type RenameOutcome = "renamed" | "rename_refused" | "duplicate_delivery" | "ignored";

/**
 * `repository.renamed`: the store keys a repository by its name (tasks, the ledger and budgets,
 * memory, the stand-up), and every later delivery carries the new one. The rows of the old name
 * move to the new one at once, in the transaction that records the delivery
 * (`store/repository-rename.ts`, through `oncePerDelivery`): a local write only, no GitHub
 * request, like the schedules `installation-removed.ts` disables. So the rename is done before
 * the delivery is acknowledged — a delivery under the new name that GitHub sends after it finds
 * the moved rows, and renames in a row (A→B, then B→C) apply in the order they arrived — and a
 * redelivery does nothing (`duplicate_delivery`). The outcome is logged: `renamed` with the
 * counts, or `rename_refused` (a warning) when the new name already has rows of its own. Any
 * sender, a bot included: whoever renamed it, the name changed. A payload whose old and new
 * names are the same changes nothing (`ignored`, unrecorded).
 *
 * A transfer to another owner (`repository.transferred`) is not followed: its rows stay under
 * the old owner's name.
 *
 * @throws {Error} when the payload has no installation id (GitHub App deliveries always have
 *   one), or the write fails: then nothing is recorded or moved, and a redelivery applies it
 */
export async function handleRepositoryRenamed(context: Context<"repository.renamed">, deps: InboundDeps): Promise<RenameOutcome> {
  const { payload } = context;
  const repository = payload.repository;
  const owner = repository.owner.login;
  const from = payload.changes.repository.name.from;
  if (from === repository.name) return "ignored";
  const installationId = payload.installation?.id ?? 0;
  if (!installationId) throw new Error("the delivery has no installation id");
  const s: Subject = {
    deliveryId: context.id,
    event: "repository.renamed",
    installationId,
    owner,
    repo: repository.name,
    number: 0,
    cloneUrl: repository.clone_url,
    defaultBranch: repository.default_branch,
  };
  const rename: RepositoryRename = { installationId, owner, from, to: repository.name, cloneUrl: repository.clone_url };
  const done: { result?: RenameResult } = {};
  const outcome = await oncePerDelivery(deps, s, async (trx) => {
    done.result = await renameRepository(trx, rename);
    return done.result.outcome === "renamed" ? "renamed" : "rename_refused";
  });
  const log = deps.log.child({ deliveryId: s.deliveryId, repo: `${owner}/${repository.name}`, event: s.event });
  const fields = { outcome, from: `${owner}/${from}`, to: `${owner}/${repository.name}`, renamedBy: payload.sender.login };
  if (done.result?.outcome === "renamed") log.info({ ...fields, moved: done.result.moved }, "repository renamed: its rows follow the new name");
  else if (done.result?.outcome === "refused") {
    log.warn({ ...fields, reason: done.result.reason }, "repository renamed to a name already in use: its rows stay under the old name");
  } else log.info(fields, "repository rename handled");
  return outcome;
}
