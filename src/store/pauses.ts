import type { DbOrTrx } from "./db.js";

/** Pauses every new LLM call of an installation (`/stop all`); a second pause records the new actor. */
export async function pauseInstallation(db: DbOrTrx, installationId: number, pausedBy: string, now = Date.now()): Promise<void> {
  await db
    .insertInto("pauses")
    .values({ installation_id: installationId, paused_by: pausedBy, paused_at: now })
    .onConflict((oc) => oc.column("installation_id").doUpdateSet({ paused_by: pausedBy, paused_at: now }))
    .execute();
}

/** Lifts an installation's pause (an organisation owner's `/retry`); no pause is not an error. */
export async function resumeInstallation(db: DbOrTrx, installationId: number): Promise<void> {
  await db.deleteFrom("pauses").where("installation_id", "=", installationId).execute();
}

/** Who paused the installation, or `undefined` when it is not paused. */
export async function pauseOf(db: DbOrTrx, installationId: number): Promise<{ pausedBy: string } | undefined> {
  const row = await db.selectFrom("pauses").select("paused_by").where("installation_id", "=", installationId).executeTakeFirst();
  return row ? { pausedBy: row.paused_by } : undefined;
}
