import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { afterEach, describe, expect, it } from "vitest";

import { cloneRepository } from "../../src/workspace/git.js";
import { runSandboxed } from "../../src/workspace/sandbox.js";
import { createBareRepo, git, TEST_GIT_SETTINGS } from "../helpers/git-fixtures.js";

let dir: string;

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe("repository content never runs on the host", () => {
  it("hooks and an fsmonitor planted in the clone are ignored by the app's git commands", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mc-gitsafe-"));
    const bare = createBareRepo({ "README.md": "hi\n" }, dir);
    const workspace = await cloneRepository({ cloneUrl: bare, dir: path.join(dir, "clone"), token: null, branch: "main", settings: TEST_GIT_SETTINGS });
    const marker = path.join(dir, "ran");
    const script = path.join(dir, "evil.sh");
    writeFileSync(script, `#!/bin/sh\ntouch ${marker}\n`);
    chmodSync(script, 0o755);
    for (const hook of ["post-checkout", "pre-commit", "pre-push", "post-commit", "reference-transaction"]) {
      writeFileSync(path.join(workspace.root, ".git", "hooks", hook), `#!/bin/sh\ntouch ${marker}\n`);
      chmodSync(path.join(workspace.root, ".git", "hooks", hook), 0o755);
    }
    git(["config", "core.fsmonitor", script], workspace.root);

    await workspace.createBranch("feature");
    writeFileSync(path.join(workspace.root, "a.txt"), "a\n");
    expect(await workspace.hasChanges()).toBe(true);
    await workspace.commitAll("Add a", { name: "Bot", email: "bot@example.test" });
    await workspace.push("feature", "main");
    await workspace.syncTo("main");
    expect(existsSync(marker)).toBe(false);
    // Control: a plain git in the same clone does run them — so the assertion above can fail.
    git(["checkout", "-q", "-b", "control"], workspace.root);
    expect(existsSync(marker)).toBe(true);
  });

  it("a sandboxed command cannot write into the clone's .git, but can write the work tree", async () => {
    dir = mkdtempSync(path.join(tmpdir(), "mc-gitsafe-"));
    const bare = createBareRepo({ "README.md": "hi\n" }, dir);
    const workspace = await cloneRepository({ cloneUrl: bare, dir: path.join(dir, "clone"), token: null, branch: "main", settings: TEST_GIT_SETTINGS });
    const result = await runSandboxed(
      { mode: "bwrap", hidePaths: [] },
      { cwd: workspace.root, command: "echo x > .git/hooks/post-checkout; echo '[core] fsmonitor = /tmp/x' >> .git/config; echo ok > written.txt" },
    );
    expect(result.sandboxed).toBe(true);
    expect(existsSync(path.join(workspace.root, ".git", "hooks", "post-checkout"))).toBe(false);
    expect(() => git(["config", "--get", "core.fsmonitor"], workspace.root)).toThrow(); // not set
    expect(existsSync(path.join(workspace.root, "written.txt"))).toBe(true);
  });
});
