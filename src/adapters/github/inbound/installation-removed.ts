import type { Context } from "probot";

import { disableInstallationSchedules } from "../../../store/orchestrator.js";
import type { InboundDeps } from "./prologue.js";

/** What a handler of {@link handleInstallationDeleted} or {@link handleRepositoriesRemoved} did. */
export type RemovalOutcome = "schedules_disabled" | "nothing_scheduled";

/**
 * `installation.deleted`: the app was uninstalled. Every stand-up schedule of the installation is
 * disabled (rows kept: a reinstall and the next config read enable them again), so no scheduled
 * job keeps failing against an installation the app can no longer reach. A local write only.
 */
export async function handleInstallationDeleted(context: Context<"installation.deleted">, deps: InboundDeps): Promise<RemovalOutcome> {
  const installationId = context.payload.installation.id;
  const disabled = await disableInstallationSchedules(deps.db, installationId);
  deps.log.info({ deliveryId: context.id, installationId, disabled }, "installation deleted: its stand-up schedules are disabled");
  return disabled > 0 ? "schedules_disabled" : "nothing_scheduled";
}

/**
 * `installation_repositories.removed`: repositories were taken out of the installation. Their
 * stand-up schedules are disabled (rows kept). A local write only.
 */
export async function handleRepositoriesRemoved(context: Context<"installation_repositories.removed">, deps: InboundDeps): Promise<RemovalOutcome> {
  const installationId = context.payload.installation.id;
  const repositories = context.payload.repositories_removed.map((r) => r.full_name);
  const disabled = await disableInstallationSchedules(deps.db, installationId, repositories);
  deps.log.info(
    { deliveryId: context.id, installationId, repositories, disabled },
    "repositories removed from the installation: their stand-up schedules are disabled",
  );
  return disabled > 0 ? "schedules_disabled" : "nothing_scheduled";
}
