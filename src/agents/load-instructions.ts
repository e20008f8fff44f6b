import picomatch from "picomatch";

import { GitHubApiError } from "../domain/errors.js";
import type { GitHubPort, GitTreeEntry } from "../ports/github.js";
import {
  fitGuidance,
  GUIDANCE_LIMITS,
  type GuidanceAgent,
  type InstructionEntry,
  instructionKind,
  parseScopedFrontMatter,
  type RepositoryGuidance,
  selectInstructions,
} from "./instructions.js";

/** The repository config's `instructions:` section (`.github/mission-control.yml`). */
export interface InstructionSettings {
  /** `false` (or `instructions: false`): no file is read and no agent gets guidance. */
  enabled: boolean;
  /** Globs choosing which instruction files are read; only recognised instruction files ever are. */
  files: readonly string[];
}

/** The reads the loader needs: a branch's tree and a blob's text (GitHub's git database API). */
export type InstructionSource = Pick<GitHubPort, "getTree" | "getBlob">;

/** Selected files read in one load at most; the rest are listed as left out. */
const MAX_FILES_READ = 24;

/**
 * The repository guidance one agent gets, read from the default branch through GitHub's git
 * database API: the branch's tree (`GET /repos/{owner}/{repo}/git/trees/{ref}?recursive=1`),
 * then the blobs (`GET /repos/{owner}/{repo}/git/blobs/{file_sha}`) of the
 * `.instructions.md` files (for their `applyTo`) and of the files that apply — never the clone,
 * whose branch the Coder may have changed. Which files apply is {@link selectInstructions}'s
 * rule; sizes are capped by {@link fitGuidance} and `GUIDANCE_LIMITS` (a blob over
 * `maxBlobBytes`, or binary, is not used), and what was cut is listed in the result.
 *
 * @param options.paths - the relevant paths (`null`: the repository as a whole, for the Architect)
 * @returns `null` when `instructions` is turned off, or the branch has no tree (empty repository, 404/409)
 * @throws {GitHubApiError} for any other failed read (retryable ones retry the job)
 */
export async function loadRepositoryGuidance(
  source: InstructionSource,
  options: { ref: string; settings: InstructionSettings | undefined; agent: GuidanceAgent; paths: readonly string[] | null },
): Promise<RepositoryGuidance | null> {
  const settings = options.settings ?? { enabled: true, files: [] };
  if (!settings.enabled) return null;
  let tree;
  try {
    tree = await source.getTree(options.ref);
  } catch (err) {
    if (err instanceof GitHubApiError && (err.status === 404 || err.status === 409)) return null;
    throw err;
  }
  const chosen = settings.files.length > 0 ? picomatch([...settings.files], { dot: true }) : () => true;
  const candidates = tree.entries.filter((e): e is GitTreeEntry & { type: "blob" } => e.type === "blob" && instructionKind(e.path) !== null && chosen(e.path));
  const notes: string[] = [];
  const omitted: RepositoryGuidance["omitted"] = [];
  if (tree.truncated) {
    notes.push("GitHub returned the repository's file list only in part (it is very large), so some sub-folder AGENTS.md files may be missing here.");
  }
  const tooLarge = (e: GitTreeEntry) => e.size !== null && e.size > GUIDANCE_LIMITS.maxBlobBytes;

  const entries: InstructionEntry[] = [];
  const texts = new Map<string, string>();
  const scopedCandidates = candidates.filter((e) => instructionKind(e.path) === "scoped").sort((a, b) => a.path.localeCompare(b.path));
  for (const [index, entry] of scopedCandidates.entries()) {
    if (index >= GUIDANCE_LIMITS.maxScopedFiles) {
      notes.push(`${scopedCandidates.length - index} more .instructions.md files were not read (at most ${GUIDANCE_LIMITS.maxScopedFiles} are).`);
      break;
    }
    if (tooLarge(entry)) {
      notes.push(`${entry.path} was not read: ${entry.size} bytes, over the ${GUIDANCE_LIMITS.maxBlobBytes}-byte limit.`);
      continue;
    }
    const raw = await source.getBlob(entry.sha);
    if (raw.includes("\0")) continue;
    const front = parseScopedFrontMatter(raw);
    if (front.problem) notes.push(`${entry.path} applies nowhere: ${front.problem}.`);
    texts.set(entry.path, raw);
    entries.push({ path: entry.path, kind: "scoped", applyTo: front.applyTo, excludeAgent: front.excludeAgent });
  }
  for (const entry of candidates) {
    const kind = instructionKind(entry.path);
    if (kind && kind !== "scoped") entries.push({ path: entry.path, kind });
  }

  const { selected, scoped } = selectInstructions(entries, { agent: options.agent, paths: options.paths });
  const byPath = new Map(candidates.map((e) => [e.path, e]));
  const read: Array<{ selection: (typeof selected)[number]; raw: string }> = [];
  for (const selection of selected) {
    const entry = byPath.get(selection.entry.path);
    if (!entry) continue;
    if (read.length >= MAX_FILES_READ) {
      omitted.push({ path: entry.path, reason: `more than ${MAX_FILES_READ} files apply` });
      continue;
    }
    if (tooLarge(entry)) {
      omitted.push({ path: entry.path, reason: `${entry.size} bytes, over the ${GUIDANCE_LIMITS.maxBlobBytes}-byte limit` });
      continue;
    }
    const raw = texts.get(entry.path) ?? (await source.getBlob(entry.sha));
    if (raw.includes("\0")) {
      omitted.push({ path: entry.path, reason: "a binary file" });
      continue;
    }
    read.push({ selection, raw });
  }
  const fitted = fitGuidance(read);
  return { ref: options.ref, files: fitted.files, omitted: [...omitted, ...fitted.omitted], scoped, notes };
}
