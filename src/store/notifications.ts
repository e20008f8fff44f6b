/**
 * The reads behind notifications: the daily digest's figures per installation.
 */
import type { DbOrTrx } from "./db.js";
import { parseNanoUsd } from "../domain/money.js";
import { sumNanoUsd } from "./usage.js";

/** One installation's day, for the daily digest. */
export interface DigestFigures {
  installationId: number;
  /** Tasks that entered `planning` (a run started or resumed there). */
  tasksStarted: number;
  /** Tasks that reached `ready_for_merge`. */
  readyForMerge: number;
  /** Tasks that stopped in `failed`. */
  failed: number;
  /** Nano-dollars recorded in the ledger. */
  spendNanoUsd: number;
  /** Spend by repository, largest first (nano-dollars). */
  repositories: Array<{ repository: string; spendNanoUsd: number }>;
}

/**
 * The figures of every installation with any activity (a transition or a recorded call) in
 * `[from, to)` (epoch ms).
 */
export async function digestFigures(db: DbOrTrx, from: number, to: number): Promise<DigestFigures[]> {
  const transitions = await db
    .selectFrom("transitions")
    .innerJoin("tasks", "tasks.id", "transitions.task_id")
    .where("transitions.created_at", ">=", from)
    .where("transitions.created_at", "<", to)
    .where("transitions.to_state", "in", ["planning", "ready_for_merge", "failed"])
    .select([
      "tasks.installation_id as installation_id",
      "transitions.to_state as to_state",
      (eb) => eb.fn.count<number>("transitions.task_id").distinct().as("n"),
    ])
    .groupBy(["tasks.installation_id", "transitions.to_state"])
    .execute();
  const spend = await db
    .selectFrom("llm_usage")
    .where("created_at", ">=", from)
    .where("created_at", "<", to)
    .select(["installation_id", "repository", sumNanoUsd("cost_nano_usd").as("nano_usd")])
    .groupBy(["installation_id", "repository"])
    .execute();
  const byInstallation = new Map<number, DigestFigures>();
  const figures = (id: number) => {
    const key = Number(id);
    let f = byInstallation.get(key);
    if (!f) {
      f = { installationId: key, tasksStarted: 0, readyForMerge: 0, failed: 0, spendNanoUsd: 0, repositories: [] };
      byInstallation.set(key, f);
    }
    return f;
  };
  for (const row of transitions) {
    const f = figures(row.installation_id);
    const n = Number(row.n);
    if (row.to_state === "planning") f.tasksStarted += n;
    else if (row.to_state === "ready_for_merge") f.readyForMerge += n;
    else f.failed += n;
  }
  for (const row of spend) {
    const f = figures(row.installation_id);
    const nano = parseNanoUsd(row.nano_usd);
    f.spendNanoUsd += nano;
    f.repositories.push({ repository: row.repository, spendNanoUsd: nano });
  }
  for (const f of byInstallation.values()) f.repositories.sort((a, b) => b.spendNanoUsd - a.spendNanoUsd || a.repository.localeCompare(b.repository));
  return [...byInstallation.values()].sort((a, b) => a.installationId - b.installationId);
}
