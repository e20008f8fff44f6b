import type { PullRequestFile, ReviewCommentInput } from "../ports/github.js";

/** Line numbers an inline review comment may be placed on, per side of a file's diff. */
export interface CommentableLines {
  /** Lines of the new file shown in the diff: added (`+`) and context lines. */
  RIGHT: Set<number>;
  /** Lines of the old file shown in the diff: removed (`-`) and context lines. */
  LEFT: Set<number>;
}

const HUNK_HEADER = /^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@/;

/**
 * Parses a unified-diff `patch` as GitHub returns it in `GET /pulls/{n}/files` and
 * `GET /compare/{base}...{head}` (hunks only, starting at `@@`) into the lines an inline review
 * comment may be placed on. GitHub accepts a comment on `line` of `side` only when that line is
 * shown in the diff: RIGHT = added and context lines (numbered in the new file), LEFT = removed
 * and context lines (numbered in the old file).
 *
 * Each hunk is read for exactly the number of old and new lines its header announces, so text
 * before the first header, a trailing newline and `\ No newline at end of file` markers are
 * ignored; an empty line inside a hunk counts as a context line (some tools strip the leading
 * space of blank context lines).
 *
 * @param patch - absent for binary or very large files: nothing is commentable
 */
export function commentableLines(patch: string | undefined): CommentableLines {
  const lines: CommentableLines = { RIGHT: new Set(), LEFT: new Set() };
  if (!patch) return lines;
  let oldLine = 0;
  let newLine = 0;
  let oldLeft = 0;
  let newLeft = 0;
  for (const row of patch.split("\n")) {
    const hunk = HUNK_HEADER.exec(row);
    if (hunk) {
      oldLine = Number(hunk[1]);
      oldLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
      newLine = Number(hunk[3]);
      newLeft = hunk[4] === undefined ? 1 : Number(hunk[4]);
      continue;
    }
    if (oldLeft <= 0 && newLeft <= 0) continue; // outside any hunk
    const kind = row[0];
    if (kind === "\\") continue; // "\ No newline at end of file"
    if (kind === "+") {
      if (newLeft <= 0) continue;
      lines.RIGHT.add(newLine++);
      newLeft--;
    } else if (kind === "-") {
      if (oldLeft <= 0) continue;
      lines.LEFT.add(oldLine++);
      oldLeft--;
    } else {
      // Context: " " (or an empty line). Shown on both sides.
      if (oldLeft > 0) lines.LEFT.add(oldLine++);
      if (newLeft > 0) lines.RIGHT.add(newLine++);
      oldLeft--;
      newLeft--;
    }
  }
  return lines;
}

/** A comment the model wants to make, before it is known whether GitHub can place it inline. */
export interface ProposedComment {
  path: string;
  line: number;
  side?: "LEFT" | "RIGHT" | undefined;
  body: string;
}

/** The result of {@link partitionComments}. */
export interface PartitionedComments<C extends ProposedComment> {
  /** Comments GitHub will accept on the diff, ready for `createReview({ comments })`. */
  inline: ReviewCommentInput[];
  /** Comments that must go into the review body instead, each with the reason in one phrase. */
  folded: Array<C & { reason: string }>;
}

/**
 * Splits proposed comments into those that can be placed inline (their path is in `files` and
 * their line is a commentable line of that file's patch on their side; `side` defaults to
 * RIGHT) and those to fold into the review body, each with a reason.
 *
 * Re-reviews pass `options.pullRequestFiles`: the model saw the compare patches (`files`), but
 * GitHub places a review comment against the pull request's own diff (base...head), so a
 * comment must be commentable in both. LEFT comments are folded on a re-review: the old-file
 * line numbers of a compare patch (since the last review) and of the pull request's diff (since
 * the base) number different files, so one could land on the wrong line.
 */
export function partitionComments<C extends ProposedComment>(
  files: readonly PullRequestFile[],
  comments: readonly C[],
  options: { pullRequestFiles?: readonly PullRequestFile[] | undefined } = {},
): PartitionedComments<C> {
  const cache = new Map<readonly PullRequestFile[], Map<string, CommentableLines | null>>();
  const linesOf = (set: readonly PullRequestFile[], path: string): CommentableLines | null | undefined => {
    let byPath = cache.get(set);
    if (!byPath) {
      byPath = new Map(set.map((f) => [f.filename, f.patch === undefined ? null : commentableLines(f.patch)]));
      cache.set(set, byPath);
    }
    return byPath.get(path);
  };
  const reReview = options.pullRequestFiles !== undefined;
  const inline: ReviewCommentInput[] = [];
  const folded: Array<C & { reason: string }> = [];

  for (const comment of comments) {
    const side = comment.side ?? "RIGHT";
    const reason = ((): string | null => {
      const lines = linesOf(files, comment.path);
      if (lines === undefined) {
        return reReview ? "the file did not change since the last review" : "the file is not part of this pull request's diff";
      }
      if (lines === null) return "the file has no textual diff (binary or too large)";
      if (!lines[side].has(comment.line)) {
        const other = side === "RIGHT" ? "LEFT" : "RIGHT";
        if (lines[other].has(comment.line)) {
          return `line ${comment.line} is in the diff only on the ${other} side (${other === "RIGHT" ? "new" : "old"} file), not ${side}`;
        }
        return `line ${comment.line} is not a changed or context line of the ${reReview ? "changes since the last review" : "diff"}`;
      }
      if (options.pullRequestFiles) {
        if (side === "LEFT") return "comments on removed lines are not placed inline on a re-review";
        const prLines = linesOf(options.pullRequestFiles, comment.path);
        if (!prLines || !prLines.RIGHT.has(comment.line)) return `line ${comment.line} is not in the pull request's diff against its base`;
      }
      return null;
    })();
    if (reason === null) inline.push({ path: comment.path, line: comment.line, side, body: comment.body });
    else folded.push({ ...comment, reason });
  }
  return { inline, folded };
}
