import { lstat, readdir } from "node:fs/promises";
import path from "node:path";

/**
 * Disk space used by the files under `dir`, in bytes: allocated blocks (`st_blocks × 512`), so
 * a sparse file counts for what it really takes. Symbolic links are not followed, and a file
 * with several hard links inside the tree counts once.
 *
 * @param signal - stops the walk early; the total so far is returned
 */
export async function directoryBytes(dir: string, signal?: AbortSignal): Promise<number> {
  let total = 0;
  const seen = new Set<string>();
  const pending = [dir];
  while (pending.length > 0 && !signal?.aborted) {
    const current = pending.pop()!;
    const entries = await readdir(current, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      const full = path.join(current, entry.name);
      const info = await lstat(full).catch(() => null);
      if (!info) continue;
      if (info.nlink > 1 && !info.isDirectory()) {
        const key = `${info.dev}:${info.ino}`;
        if (seen.has(key)) continue;
        seen.add(key);
      }
      total += info.blocks * 512;
      if (info.isDirectory()) pending.push(full);
    }
  }
  return total;
}

/**
 * Measures `dir` every `intervalMs` milliseconds (after the previous measurement finished) and
 * calls `onExceeded` once when it holds more than `limitBytes`.
 *
 * @returns a function that stops the watch
 */
export function watchDiskUsage(dir: string, limitBytes: number, intervalMs: number, onExceeded: (bytes: number) => void): () => void {
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const tick = async (): Promise<void> => {
    const bytes = await directoryBytes(dir, stop.signal);
    if (stop.signal.aborted) return;
    if (bytes > limitBytes) {
      onExceeded(bytes);
      return;
    }
    timer = setTimeout(() => void tick(), intervalMs);
  };
  timer = setTimeout(() => void tick(), intervalMs);
  return () => {
    stop.abort();
    clearTimeout(timer);
  };
}
