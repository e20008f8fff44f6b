import { execFile } from "node:child_process";

/**
 * Removes a folder and everything in it, like `rm -rf --one-file-system`: GNU rm walks relative
 * to directory descriptors, so it also removes trees deeper than PATH_MAX that a sandboxed
 * command may have built (Node's `fs.rm` fails on those with ENAMETOOLONG). Symbolic links are
 * removed, never followed. A missing path is not an error.
 *
 * @throws {Error} with rm's message when something could not be removed
 */
export function removeTree(target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("rm", ["-rf", "--one-file-system", "--", target], { maxBuffer: 1024 ** 2 }, (err, _stdout, stderr) => {
      if (err) reject(new Error(`removing ${target} failed: ${String(stderr).trim().slice(0, 500) || err.message}`));
      else resolve();
    });
  });
}
