import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import type { GitSettings } from "../../src/workspace/git.js";
import { sandboxOwner } from "../../src/workspace/sandbox.js";

const SEED_IDENTITY = ["-c", "user.name=Seed", "-c", "user.email=seed@example.test", "-c", "commit.gpgsign=false"];

/**
 * A global git config for the tests' own git commands: `safe.directory = *`, since the clones
 * they inspect belong to the sandbox user when the tests run as root (git 2.39 reads
 * `safe.directory` from a global file only).
 */
export const TEST_GIT_GLOBAL_CONFIG: string = (() => {
  const dir = mkdtempSync(path.join(tmpdir(), "mc-test-gitconfig-"));
  const file = path.join(dir, "gitconfig");
  writeFileSync(file, "[safe]\n\tdirectory = *\n");
  return file;
})();

/** Runs git (no system config, the tests' global config) and returns its trimmed stdout. */
export function git(args: string[], cwd?: string): string {
  const env = { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: TEST_GIT_GLOBAL_CONFIG };
  return execFileSync("git", args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
}

/**
 * A real bare repository (the "remote"), seeded with one commit on `main` holding `files`.
 *
 * @returns the bare repository's path, usable as `clone_url`
 */
export function createBareRepo(files: Record<string, string>, root = mkdtempSync(path.join(tmpdir(), "mc-remote-"))): string {
  const bare = path.join(root, "remote.git");
  git(["init", "--bare", "-q", "-b", "main", bare]);
  const seed = path.join(root, "seed");
  git(["init", "-q", "-b", "main", seed]);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(seed, file)), { recursive: true });
    writeFileSync(path.join(seed, file), content);
  }
  git(["add", "-A"], seed);
  git([...SEED_IDENTITY, "commit", "-q", "-m", "Initial commit"], seed);
  git(["push", "-q", bare, "main"], seed);
  return bare;
}

/** Branch names of a bare repository. */
export function branches(bare: string): string[] {
  const out = git(["--git-dir", bare, "for-each-ref", "--format=%(refname:short)", "refs/heads"]);
  return out ? out.split("\n") : [];
}

/** A file's content at a ref of a bare repository. */
export function fileAt(bare: string, ref: string, file: string): string {
  return git(["--git-dir", bare, "show", `${ref}:${file}`]);
}

/**
 * The files a branch changes against `base`, with GitHub-style patches (hunks only), as
 * `GET /repos/{owner}/{repo}/pulls/{n}/files` returns them.
 */
export function pullRequestFiles(
  bare: string,
  base: string,
  head: string,
): Array<{ filename: string; status: string; additions: number; deletions: number; patch: string }> {
  const range = `${base}...${head}`;
  const numstat = git(["--git-dir", bare, "diff", "--numstat", range]);
  const statuses = new Map(
    git(["--git-dir", bare, "diff", "--name-status", range])
      .split("\n")
      .filter(Boolean)
      .map((line) => {
        const [status, file] = line.split("\t");
        return [file ?? "", status ?? "M"] as const;
      }),
  );
  const names: Record<string, string> = { A: "added", M: "modified", D: "removed" };
  return numstat
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [additions, deletions, filename = ""] = line.split("\t");
      const full = git(["--git-dir", bare, "diff", range, "--", filename]);
      const patch = full.slice(full.indexOf("@@"));
      return {
        filename,
        status: names[statuses.get(filename) ?? "M"] ?? "modified",
        additions: Number(additions),
        deletions: Number(deletions),
        patch,
      };
    });
}

/**
 * How the app's git runs in tests: the real bubblewrap sandbox, and the `file` protocol allowed
 * besides https/http because the tests' remotes are local bare repositories.
 */
export const TEST_GIT_SETTINGS: GitSettings = Object.freeze({ sandbox: { mode: "bwrap" as const }, allowedProtocols: ["https", "http", "file"] });

/**
 * Gives a folder made by the test (as root) to the sandbox user, as the app does with its own
 * clones, so that sandboxed git can work in it. No-op when the tests do not run as root.
 */
export function giveToSandboxUser(dir: string): void {
  const owner = sandboxOwner(TEST_GIT_SETTINGS.sandbox);
  if (owner) execFileSync("chown", ["-R", `${owner.uid}:${owner.gid}`, dir]);
}
