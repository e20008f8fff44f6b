import { describe, expect, it } from "vitest";

import { nextFireAt } from "../../src/config/cron.js";
import type { RunningApp } from "../helpers/app-harness.js";
import type { FakeGitHub } from "../helpers/github-fake.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { useE2E } from "./harness.js";
import { INSTALLATION_ID, OWNER, REPO, SECRET } from "./scenario.js";

const boot = useE2E();

const CONFIG_PATH = ".github/mission-control.yml";

const STANDUP = ["orchestrator:", "  standup:", '    cron: "0 9 * * *"', "    timezone: Europe/Berlin", ""].join("\n");
const WEEKDAYS = ["orchestrator:", "  standup:", '    cron: "30 7 * * 1-5"', "    timezone: UTC", ""].join("\n");

/** The `push` index of GitHub's example of a push to a branch (with an installation) in `@octokit/webhooks-examples`. */
const BRANCH_PUSH_EXAMPLE = 4;

let nextSha = 0x100;

/**
 * GitHub's `push` example (a branch push), adapted: our repository (default branch `main`),
 * installation and pusher, the branch `branch`, and one commit whose file lists are `files`.
 */
function pushPayload(options: {
  cloneUrl: string;
  branch?: string;
  files?: { added?: string[]; modified?: string[]; removed?: string[] };
  deleted?: boolean;
  forced?: boolean;
  commits?: number;
}) {
  const payload = examplePayload("push", undefined, BRANCH_PUSH_EXAMPLE);
  const sha = (nextSha++).toString(16).padStart(40, "0");
  payload.ref = `refs/heads/${options.branch ?? "main"}`;
  payload.before = (nextSha++).toString(16).padStart(40, "0");
  payload.after = options.deleted ? "0".repeat(40) : sha;
  payload.created = false;
  payload.deleted = options.deleted ?? false;
  payload.forced = options.forced ?? false;
  payload.repository.name = REPO;
  payload.repository.full_name = `${OWNER}/${REPO}`;
  payload.repository.owner.login = OWNER;
  payload.repository.owner.name = OWNER;
  payload.repository.clone_url = options.cloneUrl;
  payload.repository.default_branch = "main";
  payload.repository.master_branch = "main";
  payload.sender.login = "maintainer";
  payload.pusher.name = "maintainer";
  payload.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  const commit = payload.commits[0];
  commit.id = sha;
  commit.message = "Configure Mission Control";
  commit.added = options.files?.added ?? [];
  commit.modified = options.files?.modified ?? [];
  commit.removed = options.files?.removed ?? [];
  payload.commits = options.deleted ? [] : Array.from({ length: options.commits ?? 1 }, () => structuredClone(commit));
  payload.head_commit = options.deleted ? null : structuredClone(commit);
  return payload;
}

async function push(app: RunningApp, payload: unknown, id?: string) {
  const response = await deliver(app.url, { event: "push", payload, secret: SECRET, ...(id ? { id } : {}) });
  expect(response.status).toBeLessThan(300);
  return response;
}

async function schedules(app: RunningApp) {
  return app.db.selectFrom("repository_schedules").selectAll().execute();
}

/**
 * The intake jobs that ran, from the workers' log (a succeeded intake job is deleted from the
 * queue): their delivery, lock key and outcome.
 */
function intakes(app: RunningApp) {
  const outcomes = new Map(app.logs.filter((l) => l.msg === "intake handled").map((l) => [l.deliveryId, l.outcome]));
  return app.logs.filter((l) => l.msg === "intake started").map((l) => ({ deliveryId: l.deliveryId, lockKey: l.lockKey, outcome: outcomes.get(l.deliveryId) }));
}

/** Jobs left in the queue (none: the intake leaves no work behind). */
async function jobs(app: RunningApp) {
  return app.db.selectFrom("jobs").select(["kind", "state"]).execute();
}

async function deliveries(app: RunningApp) {
  return app.db.selectFrom("deliveries").selectAll().execute();
}

/** Requests that change something on GitHub (the installation token's mint aside). */
function writes(github: FakeGitHub) {
  return github.requests.filter((r) => r.method !== "GET" && !/^\/app\/installations\/\d+\/access_tokens$/.test(r.path));
}

describe("a pushed config takes effect: push to the default branch → stand-up schedule", () => {
  it("records the schedule when the file is pushed, changes it with a new time, and disables it when the stand-up is turned off or the file removed", async () => {
    const { app, world } = await boot({ repoConfigYaml: STANDUP });
    const { github } = world;
    expect(await schedules(app)).toEqual([]);

    // The maintainer commits the config: no label, command or mention needed.
    const before = Date.now();
    const first = await push(app, pushPayload({ cloneUrl: world.bare, files: { added: [CONFIG_PATH] } }));
    const after = Date.now();
    const [row] = await schedules(app);
    expect(row).toMatchObject({
      installation_id: INSTALLATION_ID,
      repository: "octo-org/widgets",
      kind: "standup",
      cron: "0 9 * * *",
      timezone: "Europe/Berlin",
      disabled_at: null,
      standup_issue_number: null,
      last_run_at: null,
    });
    // next_run_at is the next 09:00 in Berlin after the intake ran.
    expect([nextFireAt("0 9 * * *", "Europe/Berlin", before), nextFireAt("0 9 * * *", "Europe/Berlin", after)]).toContain(Number(row!.next_run_at));
    // One intake job in the repository's stand-up lane, for the delivery; no other job, no task, no model call, nothing written to GitHub.
    expect(intakes(app)).toEqual([{ deliveryId: first.id, lockKey: "standup:octo-org/widgets", outcome: "schedule_synced" }]);
    expect(await jobs(app)).toEqual([]);
    expect(await app.db.selectFrom("tasks").select("id").execute()).toEqual([]);
    expect(world.anthropic.requests).toEqual([]);
    expect(writes(github)).toEqual([]);
    expect(github.requestsTo("GET", /\/contents\/\.github\/mission-control\.yml$/)).toHaveLength(1);
    expect(app.logs.some((l) => l.msg === "config pushed: the stand-up schedule follows it")).toBe(true);

    // A new time: the schedule changes and its next fire follows the new cron.
    github.setRepoConfig(WEEKDAYS);
    const t0 = Date.now();
    await push(app, pushPayload({ cloneUrl: world.bare, files: { modified: [CONFIG_PATH, "README.md"] } }));
    const t1 = Date.now();
    const [changed] = await schedules(app);
    expect(changed).toMatchObject({ id: row!.id, cron: "30 7 * * 1-5", timezone: "UTC", disabled_at: null });
    expect([nextFireAt("30 7 * * 1-5", "UTC", t0), nextFireAt("30 7 * * 1-5", "UTC", t1)]).toContain(Number(changed!.next_run_at));

    // The stand-up turned off in the file: the schedule is disabled (the row kept).
    github.setRepoConfig("trigger_label: agent\n");
    await push(app, pushPayload({ cloneUrl: world.bare, files: { modified: [CONFIG_PATH] } }));
    const [off] = await schedules(app);
    expect(off).toMatchObject({ id: row!.id, cron: "30 7 * * 1-5" });
    expect(off!.disabled_at).not.toBeNull();

    // On again, then the file deleted (the defaults: no stand-up): disabled again.
    github.setRepoConfig(STANDUP);
    await push(app, pushPayload({ cloneUrl: world.bare, files: { modified: [CONFIG_PATH] } }));
    expect((await schedules(app))[0]).toMatchObject({ id: row!.id, cron: "0 9 * * *", disabled_at: null });
    github.setRepoConfig(undefined);
    await push(app, pushPayload({ cloneUrl: world.bare, files: { removed: [CONFIG_PATH] } }));
    expect((await schedules(app))[0]!.disabled_at).not.toBeNull();

    expect(intakes(app).map((i) => i.outcome)).toEqual(Array.from({ length: 5 }, () => "schedule_synced"));
    expect(await jobs(app)).toEqual([]);
    expect(await schedules(app)).toHaveLength(1);
    expect(writes(github)).toEqual([]);
    expect(world.anthropic.requests).toEqual([]);
  }, 30_000);

  it("leaves the schedule as it was when the pushed file is invalid, and says so only in the log", async () => {
    const { app, world } = await boot({ repoConfigYaml: STANDUP });
    await push(app, pushPayload({ cloneUrl: world.bare, files: { added: [CONFIG_PATH] } }));
    const [recorded] = await schedules(app);
    expect(recorded).toMatchObject({ cron: "0 9 * * *", disabled_at: null });

    for (const broken of ['orchestrator:\n  standup:\n    cron: "every morning"\n', "orchestrator: [unclosed\n", "standup_typo: true\n"]) {
      world.github.setRepoConfig(broken);
      await push(app, pushPayload({ cloneUrl: world.bare, files: { modified: [CONFIG_PATH] } }));
      expect(await schedules(app)).toEqual([recorded]);
    }
    expect(intakes(app).map((i) => i.outcome)).toEqual(["schedule_synced", "invalid_config", "invalid_config", "invalid_config"]);
    const warnings = app.logs.filter((l) => typeof l.msg === "string" && l.msg.endsWith("pushed: the stand-up schedule is left as it was"));
    expect(warnings).toHaveLength(3);
    // No comment anywhere (there is no issue), no task, no model call.
    expect(writes(world.github)).toEqual([]);
    expect(await app.db.selectFrom("tasks").select("id").execute()).toEqual([]);
    expect(world.anthropic.requests).toEqual([]);
  }, 30_000);

  it("answers every other push as noise: no job, no delivery recorded, nothing asked of GitHub", async () => {
    const { app, world } = await boot({ repoConfigYaml: STANDUP });
    const noise = [
      // Another branch, touching the file.
      pushPayload({ cloneUrl: world.bare, branch: "feature/standup", files: { modified: [CONFIG_PATH] } }),
      // The default branch, not touching the file (a path that only looks like it, too).
      pushPayload({ cloneUrl: world.bare, files: { modified: ["README.md", "docs/.github/mission-control.yml"], added: [".github/mission-control.yaml"] } }),
      // A deletion of the default branch's ref (GitHub refuses it, but the payload alone decides).
      pushPayload({ cloneUrl: world.bare, deleted: true }),
      // A tag (GitHub's own example, adapted to our repository and installation).
      (() => {
        const tag = examplePayload("push", undefined, 0);
        tag.repository.name = REPO;
        tag.repository.full_name = `${OWNER}/${REPO}`;
        tag.repository.owner.login = OWNER;
        tag.repository.default_branch = "main";
        tag.installation = { id: INSTALLATION_ID };
        return tag;
      })(),
    ];
    for (const payload of noise) await push(app, payload);
    expect(intakes(app)).toEqual([]);
    expect(await jobs(app)).toEqual([]);
    expect(await deliveries(app)).toEqual([]);
    expect(app.logs.filter((l) => l.msg === "config push handled")).toEqual([]);
    expect(await schedules(app)).toEqual([]);
    expect(world.github.requests).toEqual([]);
  }, 30_000);

  it("a redelivered push enqueues one job; a push whose file lists cannot rule the file out is read", async () => {
    const { app, world } = await boot({ repoConfigYaml: STANDUP });
    const payload = pushPayload({ cloneUrl: world.bare, files: { modified: [CONFIG_PATH] } });
    const first = await push(app, payload);
    await push(app, payload, first.id);
    expect(intakes(app)).toEqual([{ deliveryId: first.id, lockKey: "standup:octo-org/widgets", outcome: "schedule_synced" }]);
    expect((await deliveries(app)).map((d) => [d.delivery_id, d.event])).toEqual([[first.id, "push"]]);
    expect(app.logs.filter((l) => l.msg === "config push handled").map((l) => l.outcome)).toEqual(["enqueued"]);
    expect(world.github.requestsTo("GET", /\/contents\/\.github\/mission-control\.yml$/)).toHaveLength(1);
    expect(await schedules(app)).toHaveLength(1);

    // A force push (the branch rewound: the commits listed need not show the change) is read again, whatever its files.
    world.github.setRepoConfig("trigger_label: agent\n");
    await push(app, pushPayload({ cloneUrl: world.bare, forced: true, files: { modified: ["README.md"] } }));
    expect((await schedules(app))[0]!.disabled_at).not.toBeNull();
    // So is a push listing as many commits as GitHub's webhook ever lists (2048): the list may have been cut.
    world.github.setRepoConfig(STANDUP);
    await push(app, pushPayload({ cloneUrl: world.bare, commits: 2048, files: { modified: ["README.md"] } }));
    expect((await schedules(app))[0]!.disabled_at).toBeNull();
    expect(intakes(app).map((i) => i.outcome)).toEqual(["schedule_synced", "schedule_synced", "schedule_synced"]);
  }, 30_000);
});
