/**
 * A repository as the store keys it: by its owner and name. No I/O.
 */

/**
 * A repository's rename within its owner (`repository.renamed`; a transfer to another owner is
 * not one): what `store/repository-rename.ts` and each table's owner module move.
 */
export interface RepositoryRename {
  /** The installation the delivery came from: only its rows move, where a table records one. */
  installationId: number;
  /** The owner's login, as the delivery spells it. */
  owner: string;
  /** The old name without the owner (`changes.repository.name.from`), as GitHub spelled it. */
  from: string;
  /** The new name without the owner. */
  to: string;
  /** The clone URL under the new name (stored on the tasks). */
  cloneUrl: string;
}
