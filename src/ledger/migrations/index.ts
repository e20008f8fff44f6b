import type { Migration } from "kysely";

import * as initial from "./2026-11-21T0000-initial.js";

/** Every migration, by name; a static record so that it survives bundling. Names sort by time. */
export const migrations: Record<string, Migration> = {
  "2026-11-21T0000-initial": initial,
};
