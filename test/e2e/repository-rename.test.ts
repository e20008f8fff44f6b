import { describe, expect, it } from "vitest";

import { insertTask } from "../helpers/db.js";
import { deliver, examplePayload } from "../helpers/webhooks.js";
import { commentPayload, waitForReply } from "./command-helpers.js";
import { useE2E, waitForState } from "./harness.js";
import { INSTALLATION_ID, ISSUE, labeledPayload, OWNER, REPO, scriptHappyPath, SECRET } from "./scenario.js";

const boot = useE2E();

/** The repository's name after a maintainer renamed it on GitHub. */
const NEW_NAME = "gadgets";

/**
 * GitHub's `repository.renamed` example, adapted: the scenario's repository under its new name,
 * the old name in `changes`, the installation, a maintainer as sender.
 */
function renamedPayload(cloneUrl: string) {
  const payload = examplePayload("repository", "renamed");
  payload.changes.repository.name.from = REPO;
  payload.repository.name = NEW_NAME;
  payload.repository.full_name = `${OWNER}/${NEW_NAME}`;
  payload.repository.owner.login = OWNER;
  payload.repository.clone_url = cloneUrl;
  payload.repository.default_branch = "main";
  payload.organization.login = OWNER;
  payload.sender.login = "maintainer";
  payload.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return payload;
}

/** A delivery's repository, as GitHub sends it after the rename. */
function underNewName<T extends { repository: { name: string; full_name: string } }>(payload: T): T {
  payload.repository.name = NEW_NAME;
  payload.repository.full_name = `${OWNER}/${NEW_NAME}`;
  return payload;
}

/** GitHub's `pull_request.closed` example for the app's pull request, merged, under the new name. */
function mergedPayload(cloneUrl: string, number: number) {
  const payload = examplePayload("pull_request", "closed");
  const labeled = labeledPayload({ cloneUrl });
  payload.repository = labeled.repository;
  payload.installation = { id: INSTALLATION_ID };
  payload.sender = { ...labeled.sender, login: "maintainer", type: "User" };
  payload.pull_request.number = number;
  payload.pull_request.merged = true;
  payload.number = number;
  return underNewName(payload);
}

/** The outcomes the rename handler logged, one per recorded or redelivered rename delivery. */
function renameOutcomes(logs: Array<Record<string, unknown>>) {
  return logs.filter((l) => l.event === "repository.renamed" && l.outcome !== undefined).map((l) => l.outcome);
}

describe("a repository renamed on GitHub", () => {
  it("its task, budget and pull request follow the new name before the delivery is acknowledged: /budget on the PR right after answers about the task, a merge ends it", async () => {
    const { app, world } = await boot();
    scriptHappyPath(world.anthropic);
    await deliver(app.url, { event: "issues", payload: labeledPayload({ cloneUrl: world.bare }), secret: SECRET });
    await waitForState(app, "ready_for_merge");
    const pr = world.github.pulls[0]!;
    const task = await app.db.selectFrom("tasks").select(["id", "repo"]).executeTakeFirstOrThrow();
    expect(task.repo).toBe(REPO);

    // A maintainer renames the repository: GitHub answers under the new name only from now on.
    world.github.renameRepository(NEW_NAME);
    const requestsBefore = world.github.requests.length;
    // Not waiting for any worker: the rename is done by the time the delivery is acknowledged.
    const rename = await deliver(app.url, { event: "repository", payload: renamedPayload(world.bare), secret: SECRET, noWait: true });
    expect(rename.status).toBeLessThan(300);
    expect(await app.db.selectFrom("tasks").select(["id", "owner", "repo"]).execute()).toEqual([{ id: task.id, owner: OWNER, repo: NEW_NAME }]);
    const ledger = await app.db.selectFrom("llm_usage").select("repository").distinct().execute();
    expect(ledger).toEqual([{ repository: `${OWNER}/${NEW_NAME}` }]);
    // Recorded in the same transaction; no job queued for it, and no request to GitHub (not even an installation token).
    expect(await app.db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", rename.id).execute()).toEqual([{ delivery_id: rename.id }]);
    expect(await app.db.selectFrom("jobs").select("id").where("delivery_id", "=", rename.id).execute()).toEqual([]);
    expect(world.github.requests.length).toBe(requestsBefore);
    expect(renameOutcomes(app.logs)).toEqual(["renamed"]);

    // `/budget` on the pull request under the new name, delivered right after: the reply is about the
    // issue's task, and the repository's monthly spend did not restart from zero.
    const { payload, commentId } = commentPayload({ cloneUrl: world.bare, body: "/budget", issue: pr.number, pullRequest: true });
    await deliver(app.url, { event: "issue_comment", payload: underNewName(payload), secret: SECRET });
    const body = await waitForReply(world.github, commentId);
    expect(body).toContain(`### 💰 Budget for #${ISSUE}`);
    expect(body).toContain("| coder | claude-sonnet-5-5 | 3 |");
    expect(body).toMatch(new RegExp(`\\| repository ${OWNER}/${NEW_NAME} \\| monthly \\| \\$0\\.0275 \\| \\$100\\.00 \\|`));
    expect(await app.db.selectFrom("tasks").select("id").execute()).toEqual([{ id: task.id }]);

    // A redelivery (same delivery id) is a duplicate; another delivery of the same rename finds nothing left to move.
    await deliver(app.url, { event: "repository", payload: renamedPayload(world.bare), secret: SECRET, id: rename.id });
    expect(renameOutcomes(app.logs)).toEqual(["renamed", "duplicate_delivery"]);
    await deliver(app.url, { event: "repository", payload: renamedPayload(world.bare), secret: SECRET });
    expect(renameOutcomes(app.logs)).toEqual(["renamed", "duplicate_delivery", "renamed"]);
    const moved = app.logs.filter((l) => l.msg === "repository renamed: its rows follow the new name").map((l) => l.moved as Record<string, number>);
    expect(moved[0]).toMatchObject({ tasks: 1, llmUsage: 6 });
    expect(Object.values(moved[1] ?? {}).every((n) => n === 0)).toBe(true);

    // A payload whose old and new names are the same (as in GitHub's own example) is ignored, unrecorded.
    const same = renamedPayload(world.bare);
    same.changes.repository.name.from = NEW_NAME;
    const ignored = await deliver(app.url, { event: "repository", payload: same, secret: SECRET });
    expect(ignored.status).toBeLessThan(300);
    expect(await app.db.selectFrom("deliveries").select("delivery_id").where("delivery_id", "=", ignored.id).execute()).toEqual([]);
    expect(renameOutcomes(app.logs)).toHaveLength(3);

    // The pull request merged under the new name ends the task.
    world.github.closePull(pr.number, true);
    await deliver(app.url, { event: "pull_request", payload: mergedPayload(world.bare, pr.number), secret: SECRET });
    await waitForState(app, "merged");
    expect(world.github.labelsOf(ISSUE).sort()).toEqual(["agent", "mc:merged"]);
  });

  it("to a name that already has a task of its own: refused with a warning when the delivery arrives, nothing moves", async () => {
    const { app, world } = await boot({}, {}, false);
    const clone = `https://github.com/${OWNER}/${REPO}.git`;
    const original = await insertTask(app.db, { installation_id: INSTALLATION_ID, owner: OWNER, repo: REPO, issue_number: 7, clone_url: clone });
    // A task created under the new name before the rename was handled (a name reused, or a delivery GitHub sent out of order).
    const squatter = await insertTask(app.db, { installation_id: INSTALLATION_ID, owner: OWNER, repo: NEW_NAME, issue_number: 8 });

    const rename = await deliver(app.url, { event: "repository", payload: renamedPayload(world.bare), secret: SECRET, noWait: true });
    expect(rename.status).toBeLessThan(300);
    expect(renameOutcomes(app.logs)).toEqual(["rename_refused"]);
    const warning = app.logs.find((l) => l.msg === "repository renamed to a name already in use: its rows stay under the old name");
    expect(warning).toMatchObject({ level: 40, from: `${OWNER}/${REPO}`, to: `${OWNER}/${NEW_NAME}`, reason: expect.stringContaining("new name") });
    expect(await app.db.selectFrom("tasks").select(["id", "repo"]).orderBy("id").execute()).toEqual([
      { id: original, repo: REPO },
      { id: squatter, repo: NEW_NAME },
    ]);
    // Recorded all the same: a redelivery does not try again.
    await deliver(app.url, { event: "repository", payload: renamedPayload(world.bare), secret: SECRET, id: rename.id, noWait: true });
    expect(renameOutcomes(app.logs)).toEqual(["rename_refused", "duplicate_delivery"]);
    expect(await app.db.selectFrom("jobs").select("id").execute()).toEqual([]);
  });
});
