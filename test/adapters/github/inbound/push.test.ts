import { describe, expect, it } from "vitest";

import { PUSH_MAX_COMMITS, PUSH_MAX_FILES_PER_LIST, pushMayChangeConfig, REPO_CONFIG_PATH } from "../../../../src/adapters/github/inbound/push.js";

const commit = (files: { added?: string[]; modified?: string[]; removed?: string[] } = {}) => ({ added: [], modified: [], removed: [], ...files });

describe("pushMayChangeConfig: does a push's payload say the config file may have changed?", () => {
  it("is true when a commit adds, modifies or removes the file, in any commit of the push", () => {
    expect(REPO_CONFIG_PATH).toBe(".github/mission-control.yml");
    for (const list of ["added", "modified", "removed"] as const)
      expect(pushMayChangeConfig({ commits: [commit({ modified: ["README.md"] }), commit({ [list]: [REPO_CONFIG_PATH] })] })).toBe(true);
  });

  it("is false when every commit's lists are complete and leave the file alone (lists may also be absent)", () => {
    expect(pushMayChangeConfig({ commits: [commit({ modified: ["README.md", ".github/mission-control.yaml", "x/.github/mission-control.yml"] })] })).toBe(
      false,
    );
    expect(pushMayChangeConfig({ commits: [{}], forced: false, size: 1 })).toBe(false);
  });

  it("is true when the payload cannot rule the file out: a force push, no commits listed, a capped commit or file list, fewer commits than `size`", () => {
    expect(pushMayChangeConfig({ forced: true, commits: [commit({ modified: ["README.md"] })] })).toBe(true);
    expect(pushMayChangeConfig({ commits: [] })).toBe(true);
    expect(pushMayChangeConfig({ commits: Array.from({ length: PUSH_MAX_COMMITS }, () => commit()) })).toBe(true);
    expect(pushMayChangeConfig({ commits: Array.from({ length: PUSH_MAX_COMMITS - 1 }, () => commit()) })).toBe(false);
    const many = Array.from({ length: PUSH_MAX_FILES_PER_LIST }, (_, i) => `src/file-${i}.ts`);
    expect(pushMayChangeConfig({ commits: [commit({ added: many })] })).toBe(true);
    expect(pushMayChangeConfig({ commits: [commit({ removed: many.slice(1) })] })).toBe(false);
    expect(pushMayChangeConfig({ commits: [commit()], size: 25 })).toBe(true);
  });
});
