import type { Context } from "probot";

import { REPO_CONFIG_FILE } from "../../../config/repo-config.js";
import { type IntakePayload, standupLockKey } from "../../../domain/jobs.js";
import { enqueueRepositoryIntake, type InboundDeps, type TriggerOutcome } from "./prologue.js";

/** The repository config file's path, as a push's per-commit file lists name it. */
export const REPO_CONFIG_PATH = `.github/${REPO_CONFIG_FILE}`;

/**
 * The most commits a `push` delivery lists (GitHub's webhook reference: "The array includes a
 * maximum of 2048 commits"; the limit of 20 is the Events API's, not the webhook's). A list this
 * long may have been cut.
 */
export const PUSH_MAX_COMMITS = 2048;

/** The most paths a commit's `added`, `modified` or `removed` list holds ("A maximum of 3000 changed files will be reported per commit"). */
export const PUSH_MAX_FILES_PER_LIST = 3000;

/** What {@link pushMayChangeConfig} reads of a `push` payload. */
export interface PushFiles {
  forced?: boolean;
  commits?: ReadonlyArray<{ added?: readonly string[]; modified?: readonly string[]; removed?: readonly string[] }>;
  /** The number of commits in the push: sent by GitHub Enterprise Server (not by github.com's webhooks). */
  size?: number;
}

/**
 * `true` when a push may have changed `.github/mission-control.yml`: a commit adds, modifies or
 * removes it — or the payload cannot rule it out: a force push (after a rewind the commits listed
 * need not show the change, and may be none), no commits listed, a commit list or file list at
 * GitHub's cap, or fewer commits listed than the push's `size` says.
 */
export function pushMayChangeConfig(push: PushFiles): boolean {
  const commits = push.commits ?? [];
  if (push.forced || commits.length === 0 || commits.length >= PUSH_MAX_COMMITS) return true;
  if (typeof push.size === "number" && push.size > commits.length) return true;
  return commits.some((commit) =>
    [commit.added, commit.modified, commit.removed].some((files = []) => files.length >= PUSH_MAX_FILES_PER_LIST || files.includes(REPO_CONFIG_PATH)),
  );
}

/**
 * `push`: only a push to the repository's default branch (not its deletion) that changed its
 * `.github/mission-control.yml` (or may have, {@link pushMayChangeConfig}) matters — the file is
 * read from there, and it says whether the repository has a daily stand-up. Then the delivery is
 * recorded and an `intake` job queued (`config_push`, `pipeline/intake.ts`) that reads the file
 * and records, changes or disables the stand-up schedule, so a committed config takes effect
 * without waiting for a label, command or mention. Every other push is `ignored` from the payload
 * alone, with no database write. The job runs in the repository's stand-up lane
 * (`standupLockKey`): pushes of one repository are read one after another, never while the
 * repository's first stand-up is being written. Any sender: whoever pushed, the file on the
 * default branch is the config (the app's own merge of a pull request included).
 *
 * A change to the organisation's `.github` repository (the config plugin's fallback for a
 * repository without the file) or to a file the config `_extends` is not seen here: it takes
 * effect at the repository's next interaction.
 */
export async function handlePush(context: Context<"push">, deps: InboundDeps): Promise<TriggerOutcome> {
  const { payload } = context;
  const repository = payload.repository;
  if (payload.deleted || payload.ref !== `refs/heads/${repository.default_branch}`) return "ignored";
  if (!pushMayChangeConfig(payload)) return "ignored";
  const owner = repository.owner?.login ?? repository.full_name.split("/")[0] ?? "";
  const intake: IntakePayload = {
    event: "config_push",
    repository: { owner, repo: repository.name },
    after: payload.after,
    sender: { login: payload.sender?.login ?? payload.pusher.name, id: payload.sender?.id ?? 0 },
    receivedAt: new Date().toISOString(),
  };
  return enqueueRepositoryIntake(
    deps,
    { id: context.id, event: "push", installationId: payload.installation?.id, owner, repository },
    { payload: intake, lockKey: standupLockKey(owner, repository.name) },
    { message: "config push handled", fields: { after: payload.after } },
  );
}
