/**
 * A Mission Control process for the crash test: the real app, with GitHub and Anthropic
 * served by the nock fakes inside this process. The fake GitHub's state is read from and
 * written to a file, so that a second process continues where a killed one stopped.
 *
 * Usage: node --import tsx test/e2e/child-app.ts '<json options>'
 */
import { existsSync, readFileSync } from "node:fs";

import nock from "nock";

import { FakeAnthropic, text, toolUse } from "../helpers/anthropic-fake.js";
import { stopOnSignals } from "../../src/app/server.js";
import { startApp } from "../helpers/app-harness.js";
import { FakeGitHub } from "../helpers/github-fake.js";
import { GHE_HOST, INSTALLATION_ID, OWNER, PLAN, REPO, USAGE } from "./scenario.js";

interface ChildOptions {
  databasePath: string;
  workspacesDir: string;
  bare: string;
  stateFile: string;
  /** Which agents' turns to script: the whole run, or what remains after the Coder pushed. */
  script: "full" | "after-code";
  /** Create the PR on GitHub but never answer (the process is killed meanwhile). */
  hangPullRequest: boolean;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
nock.disableNetConnect();
nock.enableNetConnect((host) => /^(127\.0\.0\.1|localhost)(:\d+)?$/.test(host));

const github = new FakeGitHub({
  baseUrl: `https://${GHE_HOST}/api/v3`,
  owner: OWNER,
  repo: REPO,
  bare: options.bare,
  installationId: INSTALLATION_ID,
  permissions: { maintainer: "write" },
});
if (existsSync(options.stateFile)) github.restore(readFileSync(options.stateFile, "utf8"));
else github.addIssue({ number: 7, title: "Friendlier greeting", body: "greet() should say `Hello, <name>!`.", labels: ["agent"] });
github.persistTo(options.stateFile).start();
if (options.hangPullRequest) github.hangNext("POST", /\/pulls$/);

const anthropic = new FakeAnthropic().start();
if (options.script === "full") {
  anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
  anthropic.script(
    "coder",
    { content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: '"Hello, " + name + "!"' })], usage: USAGE.coder[0]! },
    { content: [text("- Changed the greeting.")], usage: USAGE.coder[1]! },
  );
}
anthropic.script("tester", {
  content: [toolUse("submit_judgement", { items: [{ item: PLAN.definition_of_done[0], status: "met", evidence: "changed" }] })],
  usage: USAGE.tester,
});
anthropic.script("reviewer", { content: [toolUse("submit_review", { event: "approve", body: "Fine.", comments: [] })], usage: USAGE.reviewer });

const app = await startApp({
  databasePath: options.databasePath,
  workspacesDir: options.workspacesDir,
  env: { JOB_LEASE_MS: "1500", WORKER_POLL_MS: "50", LOG_LEVEL: "warn" },
});
process.stdout.write(`READY ${app.url}\n`);
// The same graceful shutdown as `npm start` (src/main.ts), with a short deadline.
stopOnSignals(app.mission, { close: () => app.db.destroy() }, app.log, 500);
