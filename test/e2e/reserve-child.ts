/**
 * One replica's share of the cross-process budget test: opens the PostgreSQL store, waits for
 * `go` on stdin (so every process starts together), makes its reservations all at once against
 * one limit, and prints how many were granted and refused as JSON.
 *
 * Usage: node --import tsx test/e2e/reserve-child.ts '<json options>'
 */
import { createInterface } from "node:readline";

import type { BudgetLimit } from "../../src/domain/budget-rules.js";
import { BudgetExceededError } from "../../src/domain/errors.js";
import { reserve } from "../../src/store/budgets.js";
import { openPostgres } from "../../src/store/postgres.js";

interface ChildOptions {
  url: string;
  replica: number;
  reservations: number;
  limit: BudgetLimit;
  amountNanoUsd: number;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const db = openPostgres(options.url, { maxConnections: options.reservations });
// Warm the pool so that every reservation starts at the signal, not behind a connection handshake.
await Promise.all(Array.from({ length: options.reservations }, () => db.selectNoFrom((eb) => eb.val(1).as("one")).execute()));
process.stdout.write("READY\n");
const lines = createInterface({ input: process.stdin });
await new Promise<void>((resolve) => lines.once("line", () => resolve()));
lines.close();

const now = Date.now();
const outcomes = await Promise.all(
  Array.from({ length: options.reservations }, (_, i) =>
    reserve(db, {
      subject: { installationId: 1, repository: "octo/widgets", agent: "coder", taskId: options.replica * 1000 + i, subjectNumber: 7, jobId: null },
      limits: [options.limit],
      amountNanoUsd: options.amountNanoUsd,
      now,
    }).then(
      () => "granted" as const,
      (err: unknown) => {
        if (err instanceof BudgetExceededError) return "refused" as const;
        throw err;
      },
    ),
  ),
);
process.stdout.write(
  `${JSON.stringify({ granted: outcomes.filter((o) => o === "granted").length, refused: outcomes.filter((o) => o === "refused").length })}\n`,
);
await db.destroy();
