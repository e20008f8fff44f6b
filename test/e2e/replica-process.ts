/**
 * A Mission Control replica for the replica test: the real entry point (`src/main.ts`) in its
 * own process, configured by its environment only, its JSON log lines collected.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import path from "node:path";

/** A running replica. */
export interface Replica {
  name: string;
  child: ChildProcess;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Every JSON log line so far, parsed (pino: `msg`, `level`, and the bindings). */
  logs: Array<Record<string, unknown>>;
  /** Resolves with the exit code (or signal name) once the process has ended. */
  exited: Promise<number | string | null>;
  /** The last lines of what it wrote that were not JSON log lines (stderr included). */
  other(): string;
}

const REPO_ROOT = path.resolve(import.meta.dirname, "../..");
const MAIN = path.join(REPO_ROOT, "src/main.ts");

/**
 * Spawns `node --import tsx src/main.ts` (this process's Node) with exactly `env`, and resolves
 * once it logged "Mission Control is ready" (its port is read from that line).
 *
 * @throws when the process ends before it is ready, or is not ready within `timeoutMs`
 */
export function startReplica(name: string, env: Record<string, string>, timeoutMs = 60_000): { replica: Promise<Replica>; child: ChildProcess } {
  const child = spawn(process.execPath, ["--import", "tsx", MAIN], { cwd: REPO_ROOT, env, stdio: ["ignore", "pipe", "pipe"] });
  // For debugging: MC_REPLICA_LOG_DIR=<dir> keeps each replica's output in <dir>/<name>.log.
  const keep = process.env.MC_REPLICA_LOG_DIR;
  if (keep) {
    const file = createWriteStream(path.join(keep, `${name}.log`));
    child.stdout?.pipe(file);
    child.stderr?.pipe(file);
  }
  const logs: Array<Record<string, unknown>> = [];
  const other: string[] = [];
  const exited = new Promise<number | string | null>((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal)));
  const replica = new Promise<Replica>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`replica ${name} was not ready within ${timeoutMs} ms: ${other.slice(-20).join("\n")}`)), timeoutMs);
    let pending = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        if (!line.trim()) continue;
        let entry: Record<string, unknown>;
        try {
          entry = JSON.parse(line) as Record<string, unknown>;
        } catch {
          other.push(line);
          continue;
        }
        logs.push(entry);
        if (entry.msg === "Mission Control is ready" && typeof entry.port === "number") {
          clearTimeout(timer);
          resolve({ name, child, url: `http://127.0.0.1:${entry.port}`, logs, exited, other: () => other.slice(-50).join("\n") });
        }
      }
    });
    child.stderr?.on("data", (chunk: Buffer) => other.push(...chunk.toString().split("\n").filter(Boolean)));
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`replica ${name} exited (${code}) before it was ready:\n${other.slice(-30).join("\n")}`));
    });
  });
  // Rejections after readiness (a later exit) are not start-up failures.
  replica.catch(() => undefined);
  return { replica, child };
}

/** Log lines of `replica` whose `msg` is `msg` and whose fields include `fields`. */
export function logsOf(replica: Replica, msg: string, fields: Record<string, unknown> = {}): Array<Record<string, unknown>> {
  return replica.logs.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => l[k] === v));
}

/** One attempt of a job as a replica's worker logged it: from "started" to how it ended. */
export interface JobRun {
  replica: string;
  jobId: string;
  kind: string;
  lockKey: string;
  attempt: number;
  /** Epoch ms. */
  start: number;
  /** Epoch ms; `undefined` while it has not ended. */
  end: number | undefined;
  outcome: string | undefined;
}

/** How the worker's log says an attempt ended (src/worker/worker.ts). */
const ENDINGS = new Set([
  "job succeeded",
  "intake succeeded",
  "job failed",
  "job failed; retrying",
  "job aborted; another worker will resume it after the lease expires",
  "job aborted; it will be picked up again",
  "job finished after its lease was lost; its result was discarded",
  "job abandoned after repeated interruptions",
]);

/** Every job attempt `replica` logged, with its start and end times. */
export function jobRuns(replica: Replica): JobRun[] {
  const runs = new Map<string, JobRun>();
  for (const line of replica.logs) {
    if (typeof line.jobId !== "string" || typeof line.msg !== "string") continue;
    const id = `${line.jobId}/${String(line.attempt)}`;
    const at = Date.parse(String(line.time));
    if (line.msg === "job started" || line.msg === "intake started") {
      runs.set(id, {
        replica: replica.name,
        jobId: line.jobId,
        kind: String(line.job),
        lockKey: String(line.lockKey),
        attempt: Number(line.attempt),
        start: at,
        end: undefined,
        outcome: undefined,
      });
    } else if (ENDINGS.has(line.msg)) {
      const run = runs.get(id);
      if (run && run.end === undefined) Object.assign(run, { end: at, outcome: line.msg });
    }
  }
  return [...runs.values()];
}
