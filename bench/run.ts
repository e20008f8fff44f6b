/**
 * `npm run bench`: webhook acknowledgement latency and the end-to-end pipeline's wall time,
 * on loopback, with GitHub and Anthropic served by the same nock fakes as the tests.
 * Results go to bench/results.md. Not a test: nothing here asserts a duration.
 */
import { writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";

import nock from "nock";

import { scriptHappyPath, createWorld, labeledPayload, SECRET } from "../test/e2e/scenario.js";
import { startApp, tempDir } from "../test/helpers/app-harness.js";
import { deliver } from "../test/helpers/webhooks.js";

const ACK_DELIVERIES = 200;
const PIPELINE_RUNS = 5;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

async function ackLatency(): Promise<number[]> {
  const dirs = tempDir();
  const world = createWorld();
  const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws"), startWorker: false });
  try {
    const times: number[] = [];
    for (let i = 0; i < ACK_DELIVERIES; i++) {
      const r = await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare, issue: 1000 + i }), secret: SECRET });
      if (r.status >= 300) throw new Error(`delivery answered ${r.status}`);
      times.push(r.elapsedMs);
    }
    const jobs = await app.db.selectFrom("jobs").select("id").execute();
    if (jobs.length !== ACK_DELIVERIES) throw new Error(`expected ${ACK_DELIVERIES} jobs, found ${jobs.length}`);
    return times.sort((a, b) => a - b);
  } finally {
    await app.stop(0);
    world.github.stop();
    world.anthropic.stop();
    dirs.cleanup();
  }
}

async function pipelineWallTime(): Promise<number[]> {
  const times: number[] = [];
  for (let run = 0; run < PIPELINE_RUNS; run++) {
    const dirs = tempDir();
    const world = createWorld();
    scriptHappyPath(world.anthropic);
    const app = await startApp({ databasePath: path.join(dirs.dir, "mc.sqlite"), workspacesDir: path.join(dirs.dir, "ws") });
    try {
      const started = performance.now();
      await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
      for (;;) {
        const task = await app.db.selectFrom("tasks").select("stage").executeTakeFirst();
        const open = await app.db.selectFrom("jobs").select("id").where("state", "in", ["queued", "running"]).execute();
        if (task && open.length === 0 && (task.stage === "done" || task.stage === "failed")) {
          if (task.stage !== "done") throw new Error(`the pipeline failed: ${JSON.stringify(await app.db.selectFrom("jobs").select(["kind", "last_error"]).execute())}`);
          break;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      times.push(performance.now() - started);
    } finally {
      await app.stop(0);
      world.github.stop();
      world.anthropic.stop();
      dirs.cleanup();
    }
  }
  return times.sort((a, b) => a - b);
}

async function main(): Promise<void> {
  nock.disableNetConnect();
  nock.enableNetConnect((host) => /^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host));
  const ack = await ackLatency();
  const pipeline = await pipelineWallTime();
  const ms = (n: number) => `${n.toFixed(1)} ms`;
  const cpu = os.cpus()[0]?.model ?? "unknown CPU";
  const report = `# Benchmark results

Machine: ${os.cpus().length} × ${cpu}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, ${os.platform()} ${os.release()}, Node ${process.version}.
Date: ${new Date().toISOString().slice(0, 10)}. GitHub and Anthropic are nock fakes on the same process; git and SQLite are real.

## Webhook acknowledgement (${ACK_DELIVERIES} signed \`issues.labeled\` deliveries, sequential, each enqueues a job)

Each includes the handler's guards: the repository config read (2 REST calls, 404) and the permission check (1 REST call), served by nock.

| p50 | p90 | p99 | max |
|---|---|---|---|
| ${ms(percentile(ack, 50))} | ${ms(percentile(ack, 90))} | ${ms(percentile(ack, 99))} | ${ms(ack.at(-1) ?? Number.NaN)} |

## End-to-end pipeline (label → plan comment → branch, PR → review), ${PIPELINE_RUNS} runs

| min | median | max |
|---|---|---|
| ${ms(pipeline[0] ?? Number.NaN)} | ${ms(percentile(pipeline, 50))} | ${ms(pipeline.at(-1) ?? Number.NaN)} |
`;
  writeFileSync(new URL("./results.md", import.meta.url), report);
  console.log(report);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
