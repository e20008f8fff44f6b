import type { Migration } from "kysely";

import * as initial from "./2026-11-21T0000-initial.js";
import * as lifecycle from "./2026-11-21T0100-lifecycle.js";
import * as budgets from "./2026-11-21T0200-budgets.js";
import * as triggerSnapshot from "./2026-11-22T0000-trigger-snapshot.js";
import * as intakeJobs from "./2026-11-27T0000-intake-jobs.js";
import * as jobIdsAsText from "./2026-11-27T0300-job-ids-as-text.js";
import * as nanoUsd from "./2026-11-28T0000-nano-usd.js";
import * as analyticsIndexes from "./2026-11-29T0000-analytics-indexes.js";
import * as dashboardSessions from "./2026-11-29T0100-dashboard-sessions.js";
import * as memory from "./2026-11-29T0200-memory.js";
import * as orchestrator from "./2026-11-29T0300-orchestrator.js";
import * as jobsDeliveryIndex from "./2026-11-30T0000-jobs-delivery-index.js";

/** Every migration, by name; a static record so that it survives bundling. Names sort by time. */
export const migrations: Record<string, Migration> = {
  "2026-11-21T0000-initial": initial,
  "2026-11-21T0100-lifecycle": lifecycle,
  "2026-11-21T0200-budgets": budgets,
  "2026-11-22T0000-trigger-snapshot": triggerSnapshot,
  "2026-11-27T0000-intake-jobs": intakeJobs,
  "2026-11-27T0300-job-ids-as-text": jobIdsAsText,
  "2026-11-28T0000-nano-usd": nanoUsd,
  "2026-11-29T0000-analytics-indexes": analyticsIndexes,
  "2026-11-29T0100-dashboard-sessions": dashboardSessions,
  "2026-11-29T0200-memory": memory,
  "2026-11-29T0300-orchestrator": orchestrator,
  "2026-11-30T0000-jobs-delivery-index": jobsDeliveryIndex,
};
