import { lstat, readFile } from "node:fs/promises";
import path from "node:path";

// Finding a repository's test command, and reading pass/fail counts out of its output.
// The files read are fixed names at the clone's root (never a model-supplied path); symlinks
// and anything but small regular files are ignored, since the clone's content is untrusted.

/** A test command and where it came from (shown to people, e.g. "package.json scripts.test"). */
export interface DetectedTestCommand {
  command: string;
  source: string;
}

/** Largest manifest read, in bytes. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

/** The text of `<root>/<name>` when it is a regular file (not a symlink) of sane size, else `null`. */
async function readRootFile(root: string, name: string): Promise<string | null> {
  const file = path.join(root, name);
  try {
    const info = await lstat(file);
    if (!info.isFile() || info.size > MAX_MANIFEST_BYTES) return null;
    return await readFile(file, "utf8");
  } catch {
    return null;
  }
}

/** `npm init`'s placeholder, which always fails. */
const NPM_DEFAULT_TEST = /^\s*echo\s+["']?Error: no test specified["']?\s*&&\s*exit\s+1\s*$/;

/** A Makefile rule line whose targets include `test` (not `test := …` or `test ?= …`). */
const MAKE_TEST_TARGET = /^(?:[^\s:#=]+[ \t]+)*test(?:[ \t]+[^\s:#=]+)*[ \t]*::?(?!=)/m;

/**
 * Finds the command that runs a repository's tests.
 *
 * Order: `configured` (the repository config's `test.command`); `package.json` `scripts.test`
 * (unless it is npm's "no test specified" placeholder) → `npm test`; pytest configured in
 * `pytest.ini`, `pyproject.toml` (`[tool.pytest…]` or a pytest dependency), `setup.cfg`
 * (`[tool:pytest]`), `tox.ini` (`[pytest]`) or a root `conftest.py` → `python -m pytest`; a
 * Makefile with a `test` target → `make test`; `go.mod` → `go test ./...`; `Cargo.toml` →
 * `cargo test`.
 *
 * @param root - the clone's root folder
 * @param configured - the repository config's `test.command`, if any; wins when non-blank
 * @returns the command and its source, or `null` when nothing was found; never throws for
 *   missing or malformed files
 */
export async function detectTestCommand(root: string, configured?: string): Promise<DetectedTestCommand | null> {
  if (configured !== undefined && configured.trim() !== "") {
    return { command: configured.trim(), source: "repository config test.command" };
  }

  const pkg = await readRootFile(root, "package.json");
  if (pkg !== null) {
    try {
      const parsed: unknown = JSON.parse(pkg);
      const scripts = typeof parsed === "object" && parsed !== null ? (parsed as { scripts?: unknown }).scripts : undefined;
      const test = typeof scripts === "object" && scripts !== null ? (scripts as Record<string, unknown>).test : undefined;
      if (typeof test === "string" && test.trim() !== "" && !NPM_DEFAULT_TEST.test(test)) {
        return { command: "npm test", source: "package.json scripts.test" };
      }
    } catch {
      // malformed package.json: try the other ecosystems
    }
  }

  const pytestSource = await detectPytest(root);
  if (pytestSource) return { command: "python -m pytest", source: pytestSource };

  for (const name of ["GNUmakefile", "Makefile", "makefile"]) {
    const makefile = await readRootFile(root, name);
    if (makefile !== null && MAKE_TEST_TARGET.test(makefile)) return { command: "make test", source: `${name} test target` };
  }

  if ((await readRootFile(root, "go.mod")) !== null) return { command: "go test ./...", source: "go.mod" };
  if ((await readRootFile(root, "Cargo.toml")) !== null) return { command: "cargo test", source: "Cargo.toml" };
  return null;
}

async function detectPytest(root: string): Promise<string | null> {
  if ((await readRootFile(root, "pytest.ini")) !== null) return "pytest.ini";
  const pyproject = await readRootFile(root, "pyproject.toml");
  if (pyproject !== null && /^\s*\[tool\.pytest\b|["'\s=[]pytest\b/m.test(pyproject)) return "pyproject.toml";
  const setupCfg = await readRootFile(root, "setup.cfg");
  if (setupCfg !== null && /^\s*\[tool:pytest\]|^\s*pytest\b/m.test(setupCfg)) return "setup.cfg";
  const tox = await readRootFile(root, "tox.ini");
  if (tox !== null && /^\s*\[pytest\]/m.test(tox)) return "tox.ini";
  if ((await readRootFile(root, "conftest.py")) !== null) return "conftest.py";
  return null;
}

// ---------------------------------------------------------------------------------------------
// Counting

/** Pass/fail counts read from a test run's output. */
export interface TestCounts {
  passed: number;
  failed: number;
  /** Skipped, ignored, pending or todo tests, when the runner reports them. */
  skipped?: number;
}

/** ANSI escape sequences (colours, cursor moves, titles), removed before counting. */
// eslint-disable-next-line no-control-regex -- matching ESC (U+001B) and BEL (U+0007) is the point: this strips terminal escape sequences
const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;

function lastMatch(text: string, pattern: RegExp): RegExpExecArray | null {
  let last: RegExpExecArray | null = null;
  for (const match of text.matchAll(pattern)) last = match;
  return last;
}

/** Sums `<n> <word>` pairs of a summary line into counts. */
function countWords(line: string, words: { passed: RegExp; failed: RegExp; skipped?: RegExp }): TestCounts {
  const counts: TestCounts = { passed: 0, failed: 0 };
  let sawSkipped = false;
  for (const match of line.matchAll(/(\d+)\s+([A-Za-z]+)/g)) {
    const n = Number(match[1]);
    const word = (match[2] ?? "").toLowerCase();
    if (words.passed.test(word)) counts.passed += n;
    else if (words.failed.test(word)) counts.failed += n;
    else if (words.skipped?.test(word)) {
      counts.skipped = (counts.skipped ?? 0) + n;
      sawSkipped = true;
    }
  }
  if (!sawSkipped) delete counts.skipped;
  return counts;
}

type Parser = (text: string) => TestCounts | null;

/** cargo: `test result: ok. 3 passed; 0 failed; 1 ignored; …`, once per test binary: summed. */
const cargo: Parser = (text) => {
  const lines = [...text.matchAll(/^test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored/gm)];
  if (lines.length === 0) return null;
  return lines.reduce<TestCounts>(
    (sum, m) => ({
      passed: sum.passed + Number(m[1]),
      failed: sum.failed + Number(m[2]),
      skipped: (sum.skipped ?? 0) + Number(m[3]),
    }),
    { passed: 0, failed: 0, skipped: 0 },
  );
};

/** vitest: `Tests  1 failed | 3 passed | 2 skipped (6)` (not the `Test Files` line). */
const vitest: Parser = (text) => {
  const m = lastMatch(text, /^\s*Tests\s+(\d+ (?:passed|failed|skipped|todo)[^\n]*)$/gm);
  if (!m) return null;
  return countWords(m[1] ?? "", { passed: /^passed$/, failed: /^failed$/, skipped: /^(skipped|todo)$/ });
};

/** jest: `Tests:       1 failed, 2 skipped, 3 passed, 6 total`. */
const jest: Parser = (text) => {
  const m = lastMatch(text, /^\s*Tests:\s+([^\n]*\d+ total)\s*$/gm);
  if (!m) return null;
  return countWords(m[1] ?? "", { passed: /^passed$/, failed: /^failed$/, skipped: /^(skipped|todo|pending)$/ });
};

/** node:test, TAP (`# pass 3`) or spec reporter (`ℹ pass 3`). */
const nodeTest: Parser = (text) => {
  const pass = lastMatch(text, /^(?:#|ℹ) pass (\d+)\s*$/gm);
  const fail = lastMatch(text, /^(?:#|ℹ) fail (\d+)\s*$/gm);
  if (!pass && !fail) return null;
  const counts: TestCounts = { passed: Number(pass?.[1] ?? 0), failed: Number(fail?.[1] ?? 0) };
  const skipped = lastMatch(text, /^(?:#|ℹ) skipped (\d+)\s*$/gm);
  const todo = lastMatch(text, /^(?:#|ℹ) todo (\d+)\s*$/gm);
  if (skipped || todo) counts.skipped = Number(skipped?.[1] ?? 0) + Number(todo?.[1] ?? 0);
  return counts;
};

const PYTEST_WORD = "passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected|rerun";
const PYTEST_LINE = new RegExp(`^(?:=+ )?((?:\\d+ (?:${PYTEST_WORD})(?:, )?)+)(?: in [\\d.]+m?s(?: \\([^)]*\\))?)?(?: =+)?\\s*$`, "gm");

/** pytest: `==== 1 failed, 3 passed, 1 skipped in 0.12s ====`, `3 passed in 0.1s` (-q), `== 2 passed ==`. */
const pytest: Parser = (text) => {
  const m = lastMatch(text, PYTEST_LINE);
  if (!m) return null;
  return countWords(m[1] ?? "", { passed: /^(passed|xpassed)$/, failed: /^(failed|errors?)$/, skipped: /^(skipped|xfailed)$/ });
};

/**
 * go test: top-level `--- PASS:`/`--- FAIL:`/`--- SKIP:` lines (with -v), else package lines
 * (`ok  \tpkg\t0.01s`, `FAIL\tpkg\t0.02s`) counted as packages, else `--- FAIL:` lines alone.
 */
const goTest: Parser = (text) => {
  const pass = [...text.matchAll(/^--- PASS: /gm)].length;
  const fail = [...text.matchAll(/^--- FAIL: /gm)].length;
  const skip = [...text.matchAll(/^--- SKIP: /gm)].length;
  if (pass > 0) return skip > 0 ? { passed: pass, failed: fail, skipped: skip } : { passed: pass, failed: fail };
  const okPackages = [...text.matchAll(/^ok[ \t]+\S+[ \t]+(?:[\d.]+s|\(cached\))/gm)].length;
  const failedPackages = [...text.matchAll(/^FAIL[ \t]+\S+[ \t]+(?:[\d.]+s|\[[^\]]*\])/gm)].length;
  if (okPackages + failedPackages > 0) return { passed: okPackages, failed: failedPackages };
  if (fail > 0) return { passed: 0, failed: fail };
  return null;
};

/** mocha: `3 passing (12ms)`, `1 failing`, `2 pending`. */
const mocha: Parser = (text) => {
  const passing = lastMatch(text, /^\s*(\d+) passing\b/gm);
  const failing = lastMatch(text, /^\s*(\d+) failing\s*$/gm);
  if (!passing && !failing) return null;
  const counts: TestCounts = { passed: Number(passing?.[1] ?? 0), failed: Number(failing?.[1] ?? 0) };
  const pending = lastMatch(text, /^\s*(\d+) pending\s*$/gm);
  if (pending) counts.skipped = Number(pending[1]);
  return counts;
};

/** Any line saying `N passed` and/or `N failed` (the last such line). */
const plain: Parser = (text) => {
  const m = lastMatch(text, /^.*\b\d+ (?:passed|failed)\b.*$/gm);
  if (!m) return null;
  return countWords(m[0], { passed: /^passed$/, failed: /^failed$/, skipped: /^skipped$/ });
};

const PARSERS: readonly Parser[] = [cargo, vitest, jest, nodeTest, pytest, goTest, mocha, plain];

/**
 * Reads pass/fail counts from a test run's output, after stripping ANSI colour codes.
 * Recognises vitest (`Tests  3 passed | 1 failed`), jest (`Tests: 1 failed, 3 passed, 4 total`),
 * node:test (`# pass 3` / `# fail 1`, TAP or spec), pytest (`3 passed, 1 failed in 0.12s`,
 * `===== 2 passed =====`), go test (`--- PASS/FAIL:` tests with -v, else `ok`/`FAIL` package
 * lines counted as packages), cargo (`test result: ok. 3 passed; 0 failed; 0 ignored`, summed
 * over test binaries), mocha (`3 passing`), and any plain `N passed, N failed` line.
 *
 * @returns the counts of the first format found (in the order above, cargo first), `skipped`
 *   when the runner reports it; `null` when no summary was recognised
 */
export function parseTestCounts(output: string): TestCounts | null {
  const text = output.replace(ANSI, "").replace(/\r\n?/g, "\n");
  for (const parse of PARSERS) {
    const counts = parse(text);
    if (counts) return counts;
  }
  return null;
}
