import { describe, expect, it } from "vitest";

import type { RunningApp } from "../../../helpers/app-harness.js";
import { deliver, examplePayload } from "../../../helpers/webhooks.js";
import { upsertSchedule } from "../../../../src/store/orchestrator.js";
import { useE2E } from "../../../e2e/harness.js";
import { SECRET } from "../../../e2e/scenario.js";

const boot = useE2E();
const HOUR = 3_600_000;

/** Stand-up schedules: installation 2 (the examples' installation) with two repositories, and another installation with the same name. */
async function seedSchedules(app: RunningApp): Promise<void> {
  const spec = { kind: "standup" as const, cron: "0 9 * * *", timezone: "UTC" };
  await upsertSchedule(app.db, { ...spec, installationId: 2, owner: "octocat", repo: "Hello-World" }, () => Date.now() + HOUR);
  await upsertSchedule(app.db, { ...spec, installationId: 2, owner: "octocat", repo: "Spoon-Knife" }, () => Date.now() + HOUR);
  await upsertSchedule(app.db, { ...spec, installationId: 99, owner: "octocat", repo: "Hello-World" }, () => Date.now() + HOUR);
}

async function disabled(app: RunningApp): Promise<Array<[number, string, boolean]>> {
  const rows = await app.db.selectFrom("repository_schedules").select(["installation_id", "repository", "disabled_at"]).orderBy("id").execute();
  return rows.map((r) => [Number(r.installation_id), r.repository, r.disabled_at !== null]);
}

describe("losing an installation or its repositories (GitHub's own example deliveries)", () => {
  it("installation_repositories.removed disables the stand-ups of the removed repositories of that installation only", async () => {
    const { app, world } = await boot({}, {}, false);
    await seedSchedules(app);
    const payload = examplePayload("installation_repositories", "removed");
    const res = await deliver(app.url, { event: "installation_repositories", payload, secret: SECRET });
    expect(res.status).toBeLessThan(300);
    expect(await disabled(app)).toEqual([
      [2, "octocat/hello-world", true],
      [2, "octocat/spoon-knife", false],
      [99, "octocat/hello-world", false],
    ]);
    expect(world.github.requests).toEqual([]); // a local write: nothing asked of GitHub
  });

  it("installation.deleted disables every stand-up of that installation", async () => {
    const { app, world } = await boot({}, {}, false);
    await seedSchedules(app);
    const res = await deliver(app.url, { event: "installation", payload: examplePayload("installation", "deleted"), secret: SECRET });
    expect(res.status).toBeLessThan(300);
    expect(await disabled(app)).toEqual([
      [2, "octocat/hello-world", true],
      [2, "octocat/spoon-knife", true],
      [99, "octocat/hello-world", false],
    ]);
    expect(world.github.requests).toEqual([]);
  });
});
