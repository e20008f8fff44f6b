/** Repository permissions that may start work (GitHub's `permission` / `role_name` values). */
const WRITERS = new Set(["admin", "maintain", "write"]);

/** The sender fields every webhook payload has. */
export interface Sender {
  login: string;
  type: string;
}

/** `true` for bots (GitHub Apps, this one included) — they never start work. */
export function isBot(sender: Sender): boolean {
  return sender.type === "Bot" || sender.login.endsWith("[bot]");
}

/**
 * `true` when the answer of `GET /repos/{owner}/{repo}/collaborators/{username}/permission`
 * grants write, maintain or admin. `permission` folds `maintain` into `write`, and `role_name`
 * carries the precise role, so both are read.
 */
export function canWrite(answer: { permission?: string | null; role_name?: string | null }): boolean {
  return WRITERS.has(answer.permission ?? "") || WRITERS.has(answer.role_name ?? "");
}
