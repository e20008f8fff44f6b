import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

const SEED_IDENTITY = ["-c", "user.name=Seed", "-c", "user.email=seed@example.test", "-c", "commit.gpgsign=false"];

/** Runs git and returns its trimmed stdout. */
export function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).trim();
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
export function pullRequestFiles(bare: string, base: string, head: string): Array<{ filename: string; status: string; additions: number; deletions: number; patch: string }> {
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
