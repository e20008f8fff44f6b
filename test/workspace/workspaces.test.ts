import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { pruneWorkspaces, workspaceDir } from "../../src/workspace/workspaces.js";

let root: string;

afterEach(() => rmSync(root, { recursive: true, force: true }));

function issueFolder(issue: number, bytes: number, usedAt: number): string {
  const dir = workspaceDir(root, "octo", "widgets", issue);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, "blob.bin"), Buffer.alloc(bytes));
  const parent = path.dirname(dir);
  utimesSync(parent, usedAt, usedAt);
  return parent;
}

describe("pruneWorkspaces", () => {
  it("removes the least recently used issue folders until the total fits, never the kept one", async () => {
    root = mkdtempSync(path.join(tmpdir(), "mc-ws-"));
    // Sizes are allocated blocks (as `du` counts them): each folder is its blob plus a few 4 KiB directories.
    const oldest = issueFolder(1, 400_000, 1_000);
    const middle = issueFolder(2, 400_000, 2_000);
    const newest = issueFolder(3, 400_000, 3_000);
    const kept = issueFolder(4, 400_000, 500); // oldest of all, but in use
    const removed = await pruneWorkspaces(root, 850_000, new Set([workspaceDir(root, "octo", "widgets", 4)]));
    expect(removed).toEqual([oldest, middle]);
    expect(existsSync(oldest)).toBe(false);
    expect(existsSync(middle)).toBe(false);
    expect(existsSync(newest)).toBe(true);
    expect(existsSync(kept)).toBe(true);
  });

  it("removes nothing when everything fits", async () => {
    root = mkdtempSync(path.join(tmpdir(), "mc-ws-"));
    issueFolder(1, 100, 1_000);
    expect(await pruneWorkspaces(root, 1_000_000)).toEqual([]);
  });
});
