import type { Context } from "probot";

import { type IntakePayload, standupLockKey } from "../../../domain/jobs.js";
import { enqueueRepositoryIntake, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/**
 * `repository.renamed`: the store keys a repository by its name (tasks, the ledger and budgets,
 * memory, the stand-up), and every later delivery carries the new one. The delivery is recorded
 * and an `intake` job queued (`repository_renamed`, `pipeline/intake.ts`) that moves the rows
 * of the old name to the new one in one transaction (`store/repository-rename.ts`). The job runs
 * in the stand-up lane of the old name (`standupLockKey`), never beside that repository's
 * stand-up or config push. Any sender, a bot included: whoever renamed it, the name changed. A
 * payload whose old and new names are the same changes nothing (`ignored`, unrecorded).
 *
 * A transfer to another owner (`repository.transferred`) is not followed: its rows stay under
 * the old owner's name.
 */
export async function handleRepositoryRenamed(context: Context<"repository.renamed">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const repository = payload.repository;
  const owner = repository.owner.login;
  const from = payload.changes.repository.name.from;
  if (from === repository.name) return "ignored";
  const intake: IntakePayload = {
    event: "repository_renamed",
    repository: { owner, from, to: repository.name, cloneUrl: repository.clone_url },
    sender: { login: payload.sender.login, id: payload.sender.id },
    receivedAt: new Date().toISOString(),
  };
  return enqueueRepositoryIntake(
    deps,
    { id: context.id, event: "repository.renamed", installationId: payload.installation?.id, owner, repository },
    { payload: intake, lockKey: standupLockKey(owner, from) },
    { message: "repository rename handled", fields: { from: `${owner}/${from}` } },
  );
}
