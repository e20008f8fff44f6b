/**
 * A repository renamed on GitHub (`repository.renamed`): every table that keys a repository by
 * its name follows it, in one transaction (the webhook handler's, `repository-renamed.ts`). Each
 * table is changed by the module that owns it; this is the one place that calls them all, and
 * decides whether the rename may happen.
 */
import type { RepositoryRename } from "../domain/repository.js";
import { type DbOrTrx, inTransaction } from "./db.js";
import { renameRepositoryBudgets } from "./budgets.js";
import { renameRepositoryMemory } from "./memory.js";
import { renameRepositorySchedules, repositoryHasSchedulesOrProposals } from "./orchestrator.js";
import { renameRepositoryTasks, repositoryHasTasks } from "./tasks.js";
import { renameRepositoryUsage } from "./usage.js";

/** How many rows of each table moved to the new name. */
export interface RenamedRows {
  tasks: number;
  llmUsage: number;
  budgetReservations: number;
  budgetAlerts: number;
  learnings: number;
  learningProposals: number;
  schedules: number;
  followUpProposals: number;
}

/**
 * What {@link renameRepository} did: `renamed` (the counts may all be 0: nothing was stored
 * under the old name, or another delivery of the same rename finds it done), or `refused` — the
 * new name already has rows of its own while the old one still has some (a name reused: a
 * repository deleted or renamed away, and another given its name), and nothing moved: merging
 * two repositories' tasks, spend and memory under one name would be wrong.
 */
export type RenameResult = { outcome: "renamed"; moved: RenamedRows } | { outcome: "refused"; reason: string };

/**
 * Moves everything the store keeps under `owner/from` to `owner/to`, in one transaction (`db`'s
 * when it is one, so the caller's other writes commit with it; else its own): the
 * installation's tasks (name and clone URL), ledger rows and budget reservations, the budget
 * alerts whose keys name the repository, learnings and learning proposals, stand-up schedules
 * and follow-up proposals. Rows of another installation and of any other repository stay.
 * Idempotent: run again, it finds nothing left under the old name and moves nothing more.
 *
 * The new name is "in use" when a task is stored under it in any installation (tasks are unique
 * by name and issue number, and found by name alone), or a schedule or follow-up proposal of this
 * installation (both unique per installation and name). Then, if the old name still has tasks,
 * schedules or proposals of this installation, the rename is refused and nothing is written;
 * otherwise (the same rename delivered again after the move, a late ledger row) the rest moves.
 * A rename that changes only the name's case is always the same repository.
 */
export async function renameRepository(db: DbOrTrx, rename: RepositoryRename): Promise<RenameResult> {
  const move = async (trx: DbOrTrx): Promise<RenameResult> => {
    const sameName = rename.from.toLowerCase() === rename.to.toLowerCase();
    if (!sameName) {
      const target = { installationId: rename.installationId, owner: rename.owner, repo: rename.to };
      const taken = (await repositoryHasTasks(trx, rename.owner, rename.to))
        ? "tasks are stored under the new name"
        : (await repositoryHasSchedulesOrProposals(trx, target))
          ? "a stand-up schedule or follow-up proposal of the installation is stored under the new name"
          : null;
      if (taken) {
        const source = { installationId: rename.installationId, owner: rename.owner, repo: rename.from };
        const pending =
          (await repositoryHasTasks(trx, rename.owner, rename.from, rename.installationId)) || (await repositoryHasSchedulesOrProposals(trx, source));
        if (pending) return { outcome: "refused", reason: taken };
      }
    }
    const tasks = await renameRepositoryTasks(trx, rename);
    const llmUsage = await renameRepositoryUsage(trx, rename);
    const budgets = await renameRepositoryBudgets(trx, rename);
    const memory = await renameRepositoryMemory(trx, rename);
    const orchestrator = await renameRepositorySchedules(trx, rename);
    return {
      outcome: "renamed",
      moved: {
        tasks,
        llmUsage,
        budgetReservations: budgets.reservations,
        budgetAlerts: budgets.alerts,
        learnings: memory.learnings,
        learningProposals: memory.proposals,
        schedules: orchestrator.schedules,
        followUpProposals: orchestrator.proposals,
      },
    };
  };
  return db.isTransaction ? move(db) : inTransaction(db, move);
}
