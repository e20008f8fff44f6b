import { FakeAnthropic, text, toolUse } from "../helpers/anthropic-fake.js";
import { TEST_WEBHOOK_SECRET } from "../helpers/app-harness.js";
import { createBareRepo } from "../helpers/git-fixtures.js";
import { FakeGitHub } from "../helpers/github-fake.js";
import { examplePayload } from "../helpers/webhooks.js";

export const OWNER = "octo-org";
export const REPO = "widgets";
export const INSTALLATION_ID = 4242;
export const ISSUE = 7;
export const GHE_HOST = "ghe.example.test";
/** The issue's title and body as the fake GitHub serves them, and as the deliveries carry them. */
export const ISSUE_TITLE = "Friendlier greeting";
export const ISSUE_BODY = "greet() should say `Hello, <name>!`.";

/** The repository every scenario starts from. */
export const REPO_FILES = {
  "README.md": "# widgets\n\nGreets people.\n",
  "package.json": '{ "name": "widgets", "scripts": { "test": "node --test" } }\n',
  "src/greet.js": 'export function greet(name) {\n  return "Hello " + name;\n}\n',
  ".gitignore": "node_modules/\n",
};

/** Scripted usage per call, so the ledger's costs can be checked by hand. */
export const USAGE = {
  architect: { input_tokens: 1200, output_tokens: 300, cache_creation_input_tokens: 1000, cache_read_input_tokens: 0 },
  coder: [
    { input_tokens: 2000, output_tokens: 100, cache_creation_input_tokens: 1500, cache_read_input_tokens: 0 },
    { input_tokens: 300, output_tokens: 150, cache_creation_input_tokens: 200, cache_read_input_tokens: 1500 },
    { input_tokens: 100, output_tokens: 80, cache_creation_input_tokens: 100, cache_read_input_tokens: 1700 },
  ],
  tester: { input_tokens: 700, output_tokens: 120, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  reviewer: { input_tokens: 900, output_tokens: 200, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
};

export const PLAN = {
  summary: "Greet with a comma and an exclamation mark.",
  files_to_change: [{ path: "src/greet.js", reason: "change the greeting format" }],
  steps: ["Change the string returned by greet()."],
  definition_of_done: ["greet('Ada') returns 'Hello, Ada!'"],
  test_plan: ["Add a unit test for greet()."],
};

/**
 * The scripts of a whole, successful run: plan, three Coder turns, review. `newText` replaces
 * `"Hello " + name` in the Coder's edit (default: `"Hello, " + name + "!"`).
 */
export function scriptHappyPath(anthropic: FakeAnthropic, options: { newText?: string } = {}): void {
  anthropic.script("architect", { content: [toolUse("submit_plan", PLAN)], usage: USAGE.architect });
  anthropic.script(
    "coder",
    { content: [text("Reading the file."), toolUse("read_file", { path: "src/greet.js" })], usage: USAGE.coder[0]! },
    {
      content: [toolUse("edit_file", { path: "src/greet.js", old_text: '"Hello " + name', new_text: options.newText ?? '"Hello, " + name + "!"' })],
      usage: USAGE.coder[1]!,
    },
    { content: [text("- Changed greet() to return `Hello, <name>!`.")], usage: USAGE.coder[2]! },
  );
  anthropic.script("tester", {
    content: [toolUse("submit_judgement", { items: [{ item: PLAN.definition_of_done[0], status: "met", evidence: "greet() now returns `Hello, <name>!`." }] })],
    usage: USAGE.tester,
  });
  anthropic.script("reviewer", {
    content: [toolUse("submit_review", { event: "approve", body: "The change matches the plan.", comments: [] })],
    usage: USAGE.reviewer,
  });
}

/** A fresh world: a bare repository as the remote, a fake GitHub holding the issue, a fake Anthropic. */
export function createWorld(
  options: { permissions?: Record<string, "admin" | "write" | "read">; issueBody?: string; repoConfigYaml?: string; files?: Record<string, string> } = {},
) {
  const bare = createBareRepo(options.files ?? REPO_FILES);
  const github = new FakeGitHub({
    baseUrl: `https://${GHE_HOST}/api/v3`,
    owner: OWNER,
    repo: REPO,
    bare,
    installationId: INSTALLATION_ID,
    permissions: options.permissions ?? { maintainer: "write" },
    ...(options.repoConfigYaml === undefined ? {} : { repoConfigYaml: options.repoConfigYaml }),
  }).start();
  github.addIssue({
    number: ISSUE,
    title: ISSUE_TITLE,
    body: options.issueBody ?? ISSUE_BODY,
    labels: ["agent"],
  });
  const anthropic = new FakeAnthropic().start();
  return { bare, github, anthropic };
}

/**
 * GitHub's `issues.labeled` example, adapted: our repository, issue (its title and body as the
 * fake serves them unless given), label, sender and installation.
 */
export function labeledPayload(options: {
  cloneUrl: string;
  sender?: string;
  senderType?: string;
  label?: string;
  issue?: number;
  title?: string;
  body?: string;
}) {
  const payload = examplePayload("issues", "labeled");
  payload.label.name = options.label ?? "agent";
  payload.issue.number = options.issue ?? ISSUE;
  payload.issue.title = options.title ?? ISSUE_TITLE;
  payload.issue.body = options.body ?? ISSUE_BODY;
  payload.issue.labels = [{ ...payload.label }];
  payload.issue.state = "open";
  payload.repository.name = REPO;
  payload.repository.full_name = `${OWNER}/${REPO}`;
  payload.repository.owner.login = OWNER;
  payload.repository.clone_url = options.cloneUrl;
  payload.repository.default_branch = "main";
  payload.sender.login = options.sender ?? "maintainer";
  payload.sender.type = options.senderType ?? "User";
  payload.installation = { id: INSTALLATION_ID, node_id: "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg==" };
  return payload;
}

export const SECRET = TEST_WEBHOOK_SECRET;
