import { lstat, realpath } from "node:fs/promises";
import path from "node:path";

import { PathEscapeError, ToolInputError } from "../domain/errors.js";

/**
 * Resolves a model-supplied, workspace-relative path to an absolute path inside `root`.
 * Refuses absolute paths, `..` that leaves the root, anything under `.git/`, and symlinks —
 * of the file itself or any existing ancestor — that lead outside. Works for files that do
 * not exist yet: the nearest existing ancestor is resolved with `realpath`.
 *
 * @param root - the clone's root folder
 * @param requested - the path as the model wrote it, `/`-separated
 * @returns the absolute path (through the real root)
 * @throws {PathEscapeError} with a reason the model can act on
 * @throws {ToolInputError} when a parent of the path is a file
 */
export async function resolveInWorkspace(root: string, requested: string): Promise<string> {
  if (typeof requested !== "string" || requested.trim() === "") {
    throw new PathEscapeError(String(requested), "the path is empty");
  }
  if (requested.includes("\0")) throw new PathEscapeError(requested, "the path contains a NUL byte");
  if (path.isAbsolute(requested) || /^[A-Za-z]:[\\/]/.test(requested)) {
    throw new PathEscapeError(requested, "absolute paths are not allowed; use a path relative to the repository root");
  }
  const realRoot = await realpath(root);
  const candidate = path.resolve(realRoot, requested);
  if (!isInside(realRoot, candidate)) {
    throw new PathEscapeError(requested, "the path leaves the repository");
  }
  const relative = path.relative(realRoot, candidate);
  if (relative.split(path.sep).some((segment) => segment.toLowerCase() === ".git")) {
    throw new PathEscapeError(requested, "files under .git/ cannot be read or changed");
  }
  // Resolve the deepest existing ancestor (or the file itself) through symlinks.
  let existing = candidate;
  for (;;) {
    try {
      const real = await realpath(existing);
      if (!isInside(realRoot, real)) {
        throw new PathEscapeError(requested, "a symbolic link on this path leads outside the repository");
      }
      const realRelative = path.relative(realRoot, real);
      if (realRelative.split(path.sep).some((segment) => segment.toLowerCase() === ".git")) {
        throw new PathEscapeError(requested, "a symbolic link on this path leads into .git/");
      }
      break;
    } catch (err) {
      if (err instanceof PathEscapeError) throw err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOTDIR") throw new ToolInputError(`${requested}: a parent of this path is a file, not a folder`);
      if (code !== "ENOENT") throw err;
      if (
        await lstat(existing).then(
          () => true,
          () => false,
        )
      ) {
        throw new PathEscapeError(requested, "a symbolic link on this path points to nothing");
      }
      const parent = path.dirname(existing);
      if (parent === existing) throw new PathEscapeError(requested, "no part of the path exists");
      existing = parent;
    }
  }
  return candidate;
}

/** `true` when `target` is `root` or below it. Both must be absolute and normalised. */
export function isInside(root: string, target: string): boolean {
  return target === root || target.startsWith(root.endsWith(path.sep) ? root : root + path.sep);
}
