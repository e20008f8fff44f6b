import { readdir, stat, utimes } from "node:fs/promises";
import path from "node:path";

import { cloneRepository, type GitSettings, type GitWorkspace, openWorkspace } from "./git.js";
import { removeTree } from "./remove-tree.js";
import { directoryBytes } from "./sandbox/disk-usage.js";

/** The folder of one issue's work tree: `<root>/<owner>/<repo>/issue-<n>/<purpose>` (its mirror is `<purpose>.mirror` beside it). */
export function workspaceDir(root: string, owner: string, repo: string, issueNumber: number, purpose = "code"): string {
  return path.resolve(root, owner, repo, `issue-${issueNumber}`, purpose);
}

/**
 * The clone for an issue, reused across the PR's revisions: an existing clone is fetched and
 * reset to the branch head (or the default branch while the branch does not exist yet);
 * otherwise the repository is cloned. Touches the folder so pruning keeps recent clones.
 *
 * @param token - installation token for this job's git commands (never written to disk)
 */
export async function prepareWorkspace(options: {
  dir: string;
  cloneUrl: string;
  token: string | null;
  defaultBranch: string;
  branch: string | null;
  settings: GitSettings;
}): Promise<{ workspace: GitWorkspace; reused: boolean }> {
  const existing = await openWorkspace(options.dir, options.cloneUrl, options.token, options.settings);
  let workspace = existing;
  let reused = Boolean(existing);
  if (workspace) {
    try {
      const onBranch = options.branch ? await workspace.syncTo(options.branch) : false;
      if (!onBranch) await workspace.syncTo(options.defaultBranch);
    } catch {
      workspace = null; // a damaged clone: start again
      reused = false;
    }
  }
  if (!workspace) {
    workspace = await cloneRepository({
      cloneUrl: options.cloneUrl,
      dir: options.dir,
      token: options.token,
      branch: options.defaultBranch,
      settings: options.settings,
    });
    if (options.branch) await workspace.syncTo(options.branch);
  }
  const now = new Date();
  await utimes(options.dir, now, now).catch(() => {});
  return { workspace, reused };
}

/**
 * Keeps the clones under `root` within `maxBytes`: removes whole issue folders, least
 * recently used first, until the total fits. Folders in `keep` are never removed.
 *
 * @returns the folders removed
 */
export async function pruneWorkspaces(root: string, maxBytes: number, keep: ReadonlySet<string> = new Set()): Promise<string[]> {
  const issues: { dir: string; bytes: number; usedAt: number }[] = [];
  for (const owner of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (!owner.isDirectory()) continue;
    for (const repo of await readdir(path.join(root, owner.name), { withFileTypes: true }).catch(() => [])) {
      if (!repo.isDirectory()) continue;
      for (const issue of await readdir(path.join(root, owner.name, repo.name), { withFileTypes: true }).catch(() => [])) {
        if (!issue.isDirectory()) continue;
        const dir = path.join(root, owner.name, repo.name, issue.name);
        const info = await stat(dir);
        issues.push({ dir, bytes: await directoryBytes(dir), usedAt: info.mtimeMs });
      }
    }
  }
  let total = issues.reduce((sum, i) => sum + i.bytes, 0);
  const removed: string[] = [];
  for (const issue of issues.sort((a, b) => a.usedAt - b.usedAt)) {
    if (total <= maxBytes) break;
    if ([...keep].some((k) => `${path.resolve(k)}${path.sep}`.startsWith(`${issue.dir}${path.sep}`))) continue;
    await removeTree(issue.dir);
    total -= issue.bytes;
    removed.push(issue.dir);
  }
  return removed;
}

/** Removes an issue's clones (its PR closed). */
export async function removeIssueWorkspaces(root: string, owner: string, repo: string, issueNumber: number): Promise<void> {
  await removeTree(path.resolve(root, owner, repo, `issue-${issueNumber}`));
}
