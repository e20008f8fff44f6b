import { randomBytes } from "node:crypto";
import { lchown, lstat, mkdir, open, readFile, rename, rm, stat, unlink } from "node:fs/promises";
import path from "node:path";

import { ToolInputError } from "../domain/errors.js";
import { resolveInWorkspace } from "./paths.js";

/** Limits applied to the confined file operations. */
export interface FileLimits {
  /** Largest file read or written, in bytes. */
  maxFileBytes: number;
}

export const DEFAULT_FILE_LIMITS: FileLimits = { maxFileBytes: 512 * 1024 };

/** `true` when the buffer looks binary (a NUL byte in its first 8 KiB). */
export function looksBinary(buffer: Buffer): boolean {
  return buffer.subarray(0, 8192).includes(0);
}

/**
 * Reads a text file inside the workspace.
 *
 * @param relativePath - workspace-relative path
 * @throws {PathEscapeError} for paths outside the workspace
 * @throws {ToolInputError} for missing, binary or oversized files
 */
export async function readWorkspaceFile(root: string, relativePath: string, limits = DEFAULT_FILE_LIMITS): Promise<string> {
  const absolute = await resolveInWorkspace(root, relativePath);
  const info = await stat(absolute).catch(() => null);
  if (!info) throw new ToolInputError(`${relativePath} does not exist`);
  if (!info.isFile()) throw new ToolInputError(`${relativePath} is not a regular file`);
  if (info.size > limits.maxFileBytes) {
    throw new ToolInputError(`${relativePath} is ${info.size} bytes, over the ${limits.maxFileBytes}-byte limit; read a line range instead`);
  }
  const buffer = await readFile(absolute);
  if (looksBinary(buffer)) throw new ToolInputError(`${relativePath} is a binary file and cannot be read as text`);
  return buffer.toString("utf8");
}

/**
 * Writes a text file inside the workspace, creating parent folders. The content goes to a
 * temporary file first and is renamed into place, so a failed write leaves nothing half-written.
 *
 * @throws {PathEscapeError} for paths outside the workspace
 * @throws {ToolInputError} for oversized content or a folder in the way
 */
export async function writeWorkspaceFile(root: string, relativePath: string, content: string, limits = DEFAULT_FILE_LIMITS): Promise<void> {
  const bytes = Buffer.byteLength(content, "utf8");
  if (bytes > limits.maxFileBytes) {
    throw new ToolInputError(`content is ${bytes} bytes, over the ${limits.maxFileBytes}-byte limit`);
  }
  const absolute = await resolveInWorkspace(root, relativePath);
  const existing = await stat(absolute).catch(() => null);
  if (existing && !existing.isFile()) throw new ToolInputError(`${relativePath} exists and is not a regular file`);
  const firstCreated = await mkdir(path.dirname(absolute), { recursive: true });
  // Re-check after creating folders: nothing may have been swapped for a link meanwhile.
  await resolveInWorkspace(root, relativePath);
  // Files and folders the app writes belong to the clone's owner (the sandbox user when the app
  // runs as root), so that sandboxed commands and git can change them later.
  const owner = await stat(root);
  const adopt = typeof process.getuid === "function" && process.getuid() === 0 && owner.uid !== 0;
  if (adopt && firstCreated) {
    for (let dir = path.dirname(absolute); dir.length >= firstCreated.length; dir = path.dirname(dir)) await lchown(dir, owner.uid, owner.gid);
  }
  const temporary = `${absolute}.mc-${randomBytes(6).toString("hex")}.tmp`;
  try {
    const handle = await open(temporary, "wx");
    try {
      await handle.writeFile(content, "utf8");
      if (adopt) await handle.chown(owner.uid, owner.gid);
    } finally {
      await handle.close();
    }
    await rename(temporary, absolute);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/**
 * Deletes a file inside the workspace.
 *
 * @throws {PathEscapeError} for paths outside the workspace
 * @throws {ToolInputError} when the path is missing or not a regular file
 */
export async function deleteWorkspaceFile(root: string, relativePath: string): Promise<void> {
  const absolute = await resolveInWorkspace(root, relativePath);
  const info = await lstat(absolute).catch(() => null);
  if (!info) throw new ToolInputError(`${relativePath} does not exist`);
  if (!info.isFile() && !info.isSymbolicLink()) throw new ToolInputError(`${relativePath} is not a file`);
  await unlink(absolute);
}

/** Counts non-overlapping occurrences of `needle` in `haystack`. */
export function countOccurrences(haystack: string, needle: string): number {
  if (needle === "") return 0;
  let count = 0;
  for (let i = haystack.indexOf(needle); i !== -1; i = haystack.indexOf(needle, i + needle.length)) count++;
  return count;
}

/**
 * Replaces `oldText` with `newText` in a workspace file; `oldText` must occur exactly once.
 *
 * @throws {ToolInputError} naming the count when `oldText` occurs zero or several times
 */
export async function replaceInWorkspaceFile(
  root: string,
  relativePath: string,
  oldText: string,
  newText: string,
  limits = DEFAULT_FILE_LIMITS,
): Promise<void> {
  if (oldText === "") throw new ToolInputError("old_text must not be empty");
  const content = await readWorkspaceFile(root, relativePath, limits);
  const count = countOccurrences(content, oldText);
  if (count !== 1) {
    throw new ToolInputError(
      `old_text occurs ${count} times in ${relativePath}; it must match exactly once (include more surrounding lines to make it unique)`,
    );
  }
  const index = content.indexOf(oldText);
  await writeWorkspaceFile(root, relativePath, content.slice(0, index) + newText + content.slice(index + oldText.length), limits);
}
