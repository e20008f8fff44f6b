import { execFile } from "node:child_process";
import { statfs } from "node:fs/promises";

/**
 * Disk space used by the files under `dir`, in bytes: allocated blocks, each hard-linked file
 * once, not following symbolic links, not crossing into other filesystems — measured by GNU
 * `du -s -x -B1`, which walks relative to directory descriptors and so also counts trees deeper
 * than PATH_MAX. What `du` could not read still counts what it could.
 *
 * @returns bytes; 0 when `dir` does not exist
 */
export function directoryBytes(dir: string): Promise<number> {
  return new Promise((resolve) => {
    execFile("du", ["-s", "-x", "-B1", "--", dir], { maxBuffer: 1024 ** 2 }, (_err, stdout) => {
      const bytes = Number(/^(\d+)/.exec(String(stdout))?.[1] ?? 0);
      resolve(Number.isFinite(bytes) ? bytes : 0);
    });
  });
}

/** Free space of the filesystem holding a path. */
async function free(dir: string): Promise<{ bytes: number; inodes: number } | null> {
  try {
    const s = await statfs(dir);
    return { bytes: s.bavail * s.bsize, inodes: s.ffree };
  } catch {
    return null;
  }
}

/** What a command may take from the filesystem holding its clone while it runs. */
export interface DiskBudget {
  /** Bytes the filesystem may lose. */
  bytes: number;
  /** Files (inodes) the filesystem may lose. */
  inodes: number;
}

/**
 * Watches the filesystem holding `dir` every `intervalMs` milliseconds (`statfs`, constant time
 * whatever the tree) and calls `onExceeded` once when it has lost more than `budget` bytes or
 * inodes since the watch began — whatever took them: files in trees too deep to walk, files
 * deleted but still open, or anything else the command wrote there. Space taken by other
 * writers at the same time counts too, so the limit errs on the side of stopping the command.
 *
 * @returns a function that stops the watch
 */
export function watchDiskUsage(dir: string, budget: DiskBudget, intervalMs: number, onExceeded: (what: "bytes" | "inodes") => void): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const start = free(dir);
  const tick = async (): Promise<void> => {
    const [before, now] = await Promise.all([start, free(dir)]);
    if (stopped) return;
    if (before && now) {
      if (before.bytes - now.bytes > budget.bytes) return onExceeded("bytes");
      if (before.inodes - now.inodes > budget.inodes) return onExceeded("inodes");
    }
    timer = setTimeout(() => void tick(), intervalMs);
  };
  timer = setTimeout(() => void tick(), intervalMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
