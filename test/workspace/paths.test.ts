import { existsSync } from "node:fs";
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { PathEscapeError } from "../../src/domain/errors.js";
import { writeWorkspaceFile } from "../../src/workspace/files.js";
import { isInside, resolveInWorkspace } from "../../src/workspace/paths.js";

let root: string;
let outside: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-paths-root-")));
  outside = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-paths-outside-")));
  await mkdir(path.join(root, "src", "lib"), { recursive: true });
  await writeFile(path.join(root, "src", "lib", "a.ts"), "export const a = 1;\n");
  await mkdir(path.join(root, ".git", "hooks"), { recursive: true });
  await writeFile(path.join(root, ".git", "config"), "[core]\n");
  await writeFile(path.join(outside, "secret.txt"), "top secret\n");
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

/** Asserts that resolving `requested` is refused with a PathEscapeError. */
async function expectEscape(requested: string, reason?: RegExp): Promise<PathEscapeError> {
  const error: unknown = await resolveInWorkspace(root, requested).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(PathEscapeError);
  const escape = error as PathEscapeError;
  expect(escape.code).toBe("path_escape");
  expect(escape.requestedPath).toBe(requested);
  if (reason) expect(escape.message).toMatch(reason);
  return escape;
}

describe("resolveInWorkspace: allowed paths", () => {
  it("resolves an existing nested file to its absolute path inside the root", async () => {
    await expect(resolveInWorkspace(root, "src/lib/a.ts")).resolves.toBe(path.join(root, "src", "lib", "a.ts"));
  });

  it("resolves a file that does not exist yet, in folders that do not exist yet", async () => {
    const resolved = await resolveInWorkspace(root, "new/deeper/still/file.txt");
    expect(resolved).toBe(path.join(root, "new", "deeper", "still", "file.txt"));
    expect(existsSync(path.join(root, "new"))).toBe(false); // resolving creates nothing
  });

  it("normalises `./` and inner `..` that stay inside the root", async () => {
    await expect(resolveInWorkspace(root, "./src/../src/lib/a.ts")).resolves.toBe(path.join(root, "src", "lib", "a.ts"));
  });

  it("allows a symlink whose target stays inside the root", async () => {
    await symlink(path.join(root, "src"), path.join(root, "src-link"));
    await symlink("lib/a.ts", path.join(root, "src", "a-link.ts"));
    await expect(resolveInWorkspace(root, "src-link/lib/a.ts")).resolves.toBe(path.join(root, "src-link", "lib", "a.ts"));
    await expect(resolveInWorkspace(root, "src-link/new.ts")).resolves.toBe(path.join(root, "src-link", "new.ts"));
    await expect(resolveInWorkspace(root, "src/a-link.ts")).resolves.toBe(path.join(root, "src", "a-link.ts"));
  });

  it("accepts a root given through a symlink and answers through the real root", async () => {
    const alias = path.join(outside, "root-alias");
    await symlink(root, alias);
    await expect(resolveInWorkspace(alias, "src/lib/a.ts")).resolves.toBe(path.join(root, "src", "lib", "a.ts"));
  });
});

describe("resolveInWorkspace: refused paths", () => {
  it("refuses `../x`", async () => {
    await expectEscape("../x", /leaves the repository/);
  });

  it("refuses `a/../../x`", async () => {
    await expectEscape("a/../../x", /leaves the repository/);
  });

  it("refuses a sibling folder whose name starts with the root's name", async () => {
    // `<root>-evil` shares a string prefix with `<root>` but is outside it.
    await expectEscape(`../${path.basename(root)}-evil/x`, /leaves the repository/);
  });

  it("refuses the POSIX absolute path `/tmp/x`", async () => {
    await expectEscape("/tmp/x", /absolute paths are not allowed/);
  });

  it("refuses an absolute path that points inside the root", async () => {
    await expectEscape(path.join(root, "src", "lib", "a.ts"), /absolute/);
  });

  it("refuses the Windows drive path `C:\\x` and `c:/x`", async () => {
    await expectEscape("C:\\x", /absolute/);
    await expectEscape("c:/x", /absolute/);
  });

  it("refuses an empty or blank path", async () => {
    await expectEscape("", /empty/);
    await expectEscape("   ", /empty/);
  });

  it("refuses a path with a NUL byte", async () => {
    await expectEscape("src/a.ts\0.png", /NUL/);
  });

  it("refuses `.git/config`", async () => {
    await expectEscape(".git/config", /\.git/);
  });

  it("refuses `.git` itself and `.git/hooks/pre-commit` (not existing yet)", async () => {
    await expectEscape(".git", /\.git/);
    await expectEscape(".git/hooks/pre-commit", /\.git/);
  });

  it("refuses a nested `sub/.git/hooks/x`", async () => {
    await expectEscape("sub/.git/hooks/x", /\.git/);
  });

  it("refuses `.GIT/config` (case-insensitive match)", async () => {
    await expectEscape(".GIT/config", /\.git/);
    await expectEscape("src/.Git/x", /\.git/);
  });

  it("refuses reaching .git through `..` inside the path", async () => {
    await expectEscape("src/../.git/config", /\.git/);
  });

  it("refuses a path through a symlinked folder that points outside, and writing through it creates nothing", async () => {
    await symlink(outside, path.join(root, "link"));
    await expectEscape("link/file", /symbolic link/);
    await expectEscape("link/secret.txt", /symbolic link/);
    await expectEscape("link/deeper/new.txt", /symbolic link/);

    await expect(writeWorkspaceFile(root, "link/file", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    await expect(writeWorkspaceFile(root, "link/deeper/new.txt", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    expect(existsSync(path.join(outside, "file"))).toBe(false);
    expect(existsSync(path.join(outside, "deeper"))).toBe(false);
  });

  it("refuses a symlink to a file outside", async () => {
    await symlink(path.join(outside, "secret.txt"), path.join(root, "secret-link.txt"));
    await expectEscape("secret-link.txt", /symbolic link/);
  });

  it("refuses a symlink given with a relative `../` target that leaves the root", async () => {
    await symlink(path.relative(path.join(root, "src"), path.join(outside, "secret.txt")), path.join(root, "src", "rel-link"));
    await expectEscape("src/rel-link", /symbolic link/);
  });

  it("refuses a dangling symlink pointing outside (a write would create the target outside)", async () => {
    const target = path.join(outside, "not-yet.txt");
    await symlink(target, path.join(root, "dangling"));
    await expectEscape("dangling");
    await expectEscape("dangling/child");
    await expect(writeWorkspaceFile(root, "dangling", "pwned")).rejects.toBeInstanceOf(PathEscapeError);
    expect(existsSync(target)).toBe(false);
  });

  it("refuses a symlink that leads into .git/", async () => {
    await symlink(path.join(root, ".git"), path.join(root, "gitdir"));
    await symlink(path.join(root, ".git", "config"), path.join(root, "cfg"));
    await expectEscape("gitdir/config", /\.git/);
    await expectEscape("gitdir/hooks/new-hook", /\.git/);
    await expectEscape("cfg", /\.git/);
  });
});

describe("isInside", () => {
  it("is true for the root and below, false for prefix-sharing siblings and parents", () => {
    expect(isInside("/a/b", "/a/b")).toBe(true);
    expect(isInside("/a/b", "/a/b/c")).toBe(true);
    expect(isInside("/a/b", "/a/bc")).toBe(false);
    expect(isInside("/a/b", "/a")).toBe(false);
  });
});
