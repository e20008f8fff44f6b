import { describe, expect, it } from "vitest";

import { commentableLines, partitionComments } from "../../src/agents/diff-lines.js";
import type { PullRequestFile } from "../../src/ports/github.js";

/** `git diff` of a 30-line file: a changed line and a removed line, then two insertions and a change (two hunks). */
const MULTI_HUNK = [
  "@@ -1,9 +1,8 @@",
  " line 1",
  " line 2",
  "-line 3",
  "+line 3 changed",
  " line 4",
  " line 5",
  "-line 6",
  " line 7",
  " line 8",
  " line 9",
  "@@ -19,12 +18,14 @@ line 18",
  " line 19",
  " line 20",
  " line 21",
  "+inserted A",
  "+inserted B",
  " line 22",
  " line 23",
  " line 24",
  " line 25",
  " line 26",
  " line 27",
  "-line 28",
  "+line 29 changed",
  " line 29",
  " line 30",
].join("\n");

/** `git diff` of "alpha\nbeta" (no final newline) → "alpha\nBETA\ngamma\n". */
const NO_NEWLINE = ["@@ -1,2 +1,3 @@", " alpha", "-beta", "\\ No newline at end of file", "+BETA", "+gamma"].join("\n");

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const sorted = (set: Set<number>) => [...set].sort((a, b) => a - b);

describe("commentableLines", () => {
  it("numbers added and context lines on the RIGHT and removed and context lines on the LEFT, hunk by hunk", () => {
    const lines = commentableLines(MULTI_HUNK);
    expect(sorted(lines.RIGHT)).toEqual([...range(1, 8), ...range(18, 31)]);
    expect(sorted(lines.LEFT)).toEqual([...range(1, 9), ...range(19, 30)]);
    // The added lines of the second hunk are new-file lines 21 and 22; the removed "line 28" is old-file line 28.
    expect(lines.RIGHT.has(21) && lines.RIGHT.has(22)).toBe(true);
    expect(lines.LEFT.has(28)).toBe(true);
    // Between the hunks nothing is commentable.
    for (const n of range(10, 17)) expect(lines.RIGHT.has(n) || lines.LEFT.has(n)).toBe(false);
  });

  it('ignores "\\ No newline at end of file" and a trailing newline', () => {
    const lines = commentableLines(`${NO_NEWLINE}\n`);
    expect(sorted(lines.LEFT)).toEqual([1, 2]);
    expect(sorted(lines.RIGHT)).toEqual([1, 2, 3]);
  });

  it("handles a new file, a deleted file, headers without counts and an empty context line", () => {
    expect(commentableLines("@@ -0,0 +1,3 @@\n+a\n+b\n+c")).toEqual({ RIGHT: new Set([1, 2, 3]), LEFT: new Set() });
    expect(commentableLines("@@ -1,2 +0,0 @@\n-a\n-b")).toEqual({ RIGHT: new Set(), LEFT: new Set([1, 2]) });
    expect(commentableLines("@@ -5 +5 @@\n-old\n+new")).toEqual({ RIGHT: new Set([5]), LEFT: new Set([5]) });
    expect(commentableLines("@@ -1,3 +1,3 @@\n a\n\n-c\n+C")).toEqual({ RIGHT: new Set([1, 2, 3]), LEFT: new Set([1, 2, 3]) });
  });

  it("has nothing for a missing patch, and ignores text before the first hunk", () => {
    expect(commentableLines(undefined)).toEqual({ RIGHT: new Set(), LEFT: new Set() });
    expect(commentableLines("Binary files differ")).toEqual({ RIGHT: new Set(), LEFT: new Set() });
  });
});

describe("partitionComments", () => {
  const files: PullRequestFile[] = [
    { filename: "src/a.txt", status: "modified", additions: 4, deletions: 3, patch: MULTI_HUNK },
    { filename: "b.txt", status: "modified", additions: 2, deletions: 1, patch: NO_NEWLINE },
    { filename: "logo.png", status: "added", additions: 0, deletions: 0, patch: undefined },
  ];

  it("keeps comments on lines of the diff inline, defaulting to the RIGHT side", () => {
    const { inline, folded } = partitionComments(files, [
      { path: "src/a.txt", line: 21, body: "added line" },
      { path: "src/a.txt", line: 28, side: "LEFT" as const, body: "removed line" },
      { path: "b.txt", line: 1, side: "RIGHT" as const, body: "context line" },
    ]);
    expect(inline).toEqual([
      { path: "src/a.txt", line: 21, side: "RIGHT", body: "added line" },
      { path: "src/a.txt", line: 28, side: "LEFT", body: "removed line" },
      { path: "b.txt", line: 1, side: "RIGHT", body: "context line" },
    ]);
    expect(folded).toEqual([]);
  });

  it("folds comments on another file, a line outside the hunks, the wrong side, or a file without a patch, with the reason", () => {
    const { inline, folded } = partitionComments(files, [
      { path: "README.md", line: 1, body: "other file" },
      { path: "src/a.txt", line: 12, body: "between hunks" },
      { path: "src/a.txt", line: 9, side: "RIGHT" as const, body: "only old" },
      { path: "b.txt", line: 3, side: "LEFT" as const, body: "only new" },
      { path: "logo.png", line: 1, body: "binary" },
    ]);
    expect(inline).toEqual([]);
    expect(folded.map((c) => [c.path, c.line, c.reason])).toEqual([
      ["README.md", 1, "the file is not part of this pull request's diff"],
      ["src/a.txt", 12, "line 12 is not a changed or context line of the diff"],
      ["src/a.txt", 9, "line 9 is in the diff only on the LEFT side (old file), not RIGHT"],
      ["b.txt", 3, "line 3 is in the diff only on the RIGHT side (new file), not LEFT"],
      ["logo.png", 1, "the file has no textual diff (binary or too large)"],
    ]);
    expect(folded[0]?.body).toBe("other file");
  });

  it("on a re-review, needs the line in both the compare and the pull request's diff, and folds LEFT comments", () => {
    const compare: PullRequestFile[] = [{ filename: "b.txt", status: "modified", additions: 1, deletions: 0, patch: "@@ -3,0 +4,2 @@\n+delta\n+epsilon" }];
    const pullRequest: PullRequestFile[] = [
      { filename: "b.txt", status: "modified", additions: 3, deletions: 1, patch: "@@ -1,2 +1,4 @@\n alpha\n-beta\n+BETA\n+gamma\n+delta" },
    ];
    const { inline, folded } = partitionComments(
      compare,
      [
        { path: "b.txt", line: 4, body: "in both" },
        { path: "b.txt", line: 5, body: "only in the compare" },
        { path: "b.txt", line: 2, body: "only in the pull request" },
        { path: "src/a.txt", line: 1, body: "unchanged since" },
      ],
      { pullRequestFiles: pullRequest },
    );
    expect(inline).toEqual([{ path: "b.txt", line: 4, side: "RIGHT", body: "in both" }]);
    expect(folded.map((c) => c.reason)).toEqual([
      "line 5 is not in the pull request's diff against its base",
      "line 2 is not a changed or context line of the changes since the last review",
      "the file did not change since the last review",
    ]);
    const left = partitionComments(
      [{ filename: "x", status: "modified", additions: 0, deletions: 1, patch: "@@ -1 +0,0 @@\n-x" }],
      [{ path: "x", line: 1, side: "LEFT" as const, body: "b" }],
      {
        pullRequestFiles: [{ filename: "x", status: "modified", additions: 0, deletions: 1, patch: "@@ -1 +0,0 @@\n-x" }],
      },
    );
    expect(left.folded[0]?.reason).toBe("comments on removed lines are not placed inline on a re-review");
  });
});
