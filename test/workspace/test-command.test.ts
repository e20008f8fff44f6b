import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { afterEach, beforeEach, describe, expect, it } from "vitest";

import { detectTestCommand, parseTestCounts } from "../../src/workspace/test-command.js";

let root: string;

beforeEach(async () => {
  root = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-testcmd-")));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function files(entries: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(entries)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), text);
  }
}

const ESC = "\u001b";

describe("detectTestCommand", () => {
  it("prefers the configured command over anything found in the repository", async () => {
    await files({ "package.json": JSON.stringify({ scripts: { test: "vitest run" } }) });
    expect(await detectTestCommand(root, "  pnpm test:ci  ")).toEqual({
      command: "pnpm test:ci",
      source: "repository config test.command",
    });
  });

  it("ignores a blank configured command", async () => {
    await files({ "go.mod": "module example.com/x\n\ngo 1.22\n" });
    expect(await detectTestCommand(root, "   ")).toEqual({ command: "go test ./...", source: "go.mod" });
  });

  it("uses npm test when package.json has a test script", async () => {
    await files({ "package.json": JSON.stringify({ name: "x", scripts: { test: "vitest run", build: "tsc" } }) });
    expect(await detectTestCommand(root)).toEqual({ command: "npm test", source: "package.json scripts.test" });
  });

  it("skips npm's placeholder test script and falls through to other ecosystems", async () => {
    await files({
      "package.json": JSON.stringify({ scripts: { test: 'echo "Error: no test specified" && exit 1' } }),
      Makefile: "all:\n\tgcc main.c\n\ntest: all\n\t./run-tests\n",
    });
    expect(await detectTestCommand(root)).toEqual({ command: "make test", source: "Makefile test target" });
  });

  it("skips a malformed package.json or one without scripts", async () => {
    await files({ "package.json": "{ not json", "Cargo.toml": '[package]\nname = "x"\n' });
    expect(await detectTestCommand(root)).toEqual({ command: "cargo test", source: "Cargo.toml" });
    await files({ "package.json": JSON.stringify({ name: "x" }) });
    expect(await detectTestCommand(root)).toEqual({ command: "cargo test", source: "Cargo.toml" });
  });

  it.each([
    ["pytest.ini", "[pytest]\naddopts = -q\n"],
    ["pyproject.toml", '[project]\nname = "x"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'],
    ["pyproject.toml", '[project]\nname = "x"\n[project.optional-dependencies]\ntest = ["pytest>=8", "coverage"]\n'],
    ["setup.cfg", "[metadata]\nname = x\n\n[tool:pytest]\ntestpaths = tests\n"],
    ["tox.ini", "[tox]\nenvlist = py312\n\n[pytest]\naddopts = -ra\n"],
    ["conftest.py", "import pytest\n"],
  ])("uses python -m pytest when %s configures pytest", async (name, text) => {
    await files({ [name]: text });
    expect(await detectTestCommand(root)).toEqual({ command: "python -m pytest", source: name });
  });

  it("does not pick pytest from a pyproject.toml that never mentions it", async () => {
    await files({ "pyproject.toml": '[project]\nname = "x"\ndependencies = ["requests"]\n' });
    expect(await detectTestCommand(root)).toBeNull();
  });

  it("uses make test only when the Makefile has a test target", async () => {
    await files({ Makefile: "TEST_FLAGS := -v\ntest := 1\nbuild:\n\tcc x.c\n" });
    expect(await detectTestCommand(root)).toBeNull();
    await files({ Makefile: ".PHONY: check test\ncheck test: build\n\t./t.sh\n" });
    expect(await detectTestCommand(root)).toEqual({ command: "make test", source: "Makefile test target" });
  });

  it("uses go test for a Go module and cargo test for a Rust crate", async () => {
    await files({ "go.mod": "module example.com/x\n" });
    expect(await detectTestCommand(root)).toEqual({ command: "go test ./...", source: "go.mod" });
    await rm(path.join(root, "go.mod"));
    await files({ "Cargo.toml": '[package]\nname = "x"\nversion = "0.1.0"\n' });
    expect(await detectTestCommand(root)).toEqual({ command: "cargo test", source: "Cargo.toml" });
  });

  it("follows the documented order when several ecosystems are present", async () => {
    await files({
      "Cargo.toml": "[package]\n",
      "go.mod": "module x\n",
      Makefile: "test:\n\tgo test ./...\n",
      "pytest.ini": "[pytest]\n",
      "package.json": JSON.stringify({ scripts: { test: "jest" } }),
    });
    expect((await detectTestCommand(root))?.command).toBe("npm test");
    await rm(path.join(root, "package.json"));
    expect((await detectTestCommand(root))?.command).toBe("python -m pytest");
    await rm(path.join(root, "pytest.ini"));
    expect((await detectTestCommand(root))?.command).toBe("make test");
    await rm(path.join(root, "Makefile"));
    expect((await detectTestCommand(root))?.command).toBe("go test ./...");
  });

  it("returns null for an empty repository or a missing folder", async () => {
    expect(await detectTestCommand(root)).toBeNull();
    expect(await detectTestCommand(path.join(root, "missing"))).toBeNull();
  });

  it("ignores manifests that are symlinks or folders", async () => {
    const elsewhere = await realpath(await mkdtemp(path.join(os.tmpdir(), "mc-testcmd-elsewhere-")));
    try {
      await writeFile(path.join(elsewhere, "package.json"), JSON.stringify({ scripts: { test: "steal" } }));
      await symlink(path.join(elsewhere, "package.json"), path.join(root, "package.json"));
      await mkdir(path.join(root, "go.mod"));
      expect(await detectTestCommand(root)).toBeNull();
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});

describe("parseTestCounts", () => {
  it("reads vitest's summary, with colours, ignoring the Test Files line", () => {
    const output = [
      ` ${ESC}[31m❯${ESC}[39m test/math.test.ts ${ESC}[2m(${ESC}[22m${ESC}[2m4 tests${ESC}[22m${ESC}[2m | ${ESC}[22m${ESC}[31m1 failed${ESC}[39m${ESC}[2m)${ESC}[22m`,
      "",
      `${ESC}[2m Test Files ${ESC}[22m ${ESC}[1m${ESC}[31m1 failed${ESC}[39m${ESC}[22m${ESC}[90m (1)${ESC}[39m`,
      `${ESC}[2m      Tests ${ESC}[22m ${ESC}[1m${ESC}[31m1 failed${ESC}[39m${ESC}[22m${ESC}[2m | ${ESC}[22m${ESC}[1m${ESC}[32m3 passed${ESC}[39m${ESC}[22m${ESC}[90m (4)${ESC}[39m`,
      `${ESC}[2m   Start at ${ESC}[22m 10:12:01`,
      `${ESC}[2m   Duration ${ESC}[22m 412ms`,
    ].join("\n");
    expect(parseTestCounts(output)).toEqual({ passed: 3, failed: 1 });
  });

  it("reads vitest's summary with skipped and todo tests", () => {
    expect(parseTestCounts(" Test Files  2 passed (2)\n      Tests  3 passed | 1 failed | 2 skipped | 1 todo (7)\n")).toEqual({
      passed: 3,
      failed: 1,
      skipped: 3,
    });
  });

  it("reads jest's summary", () => {
    const output = [
      "FAIL src/sum.test.js",
      "  ● sum › adds negatives",
      "",
      `${ESC}[1mTest Suites: ${ESC}[22m${ESC}[1m${ESC}[31m1 failed${ESC}[39m${ESC}[22m, ${ESC}[1m${ESC}[32m1 passed${ESC}[39m${ESC}[22m, 2 total`,
      `${ESC}[1mTests:       ${ESC}[22m${ESC}[1m${ESC}[31m1 failed${ESC}[39m${ESC}[22m, ${ESC}[1m${ESC}[33m2 skipped${ESC}[39m${ESC}[22m, ${ESC}[1m${ESC}[32m3 passed${ESC}[39m${ESC}[22m, 6 total`,
      "Snapshots:   0 total",
      "Time:        1.234 s",
      "Ran all test suites.",
    ].join("\n");
    expect(parseTestCounts(output)).toEqual({ passed: 3, failed: 1, skipped: 2 });
    expect(parseTestCounts("Tests: 1 failed, 3 passed, 4 total")).toEqual({ passed: 3, failed: 1 });
  });

  it("reads node:test's TAP and spec summaries", () => {
    const tap = [
      "TAP version 13",
      "# Subtest: adds",
      "ok 1 - adds",
      "not ok 2 - subtracts",
      "1..4",
      "# tests 4",
      "# suites 0",
      "# pass 3",
      "# fail 1",
      "# cancelled 0",
      "# skipped 0",
      "# todo 0",
      "# duration_ms 51.2",
    ].join("\n");
    expect(parseTestCounts(tap)).toEqual({ passed: 3, failed: 1, skipped: 0 });
    const spec = [
      `${ESC}[32m✔ adds ${ESC}[90m(0.5ms)${ESC}[39m`,
      "ℹ tests 5",
      "ℹ suites 1",
      "ℹ pass 4",
      "ℹ fail 0",
      "ℹ cancelled 0",
      "ℹ skipped 1",
      "ℹ todo 0",
      "ℹ duration_ms 60.1",
    ].join("\n");
    expect(parseTestCounts(spec)).toEqual({ passed: 4, failed: 0, skipped: 1 });
  });

  it("reads pytest's summary lines", () => {
    const long = [
      "============================= test session starts ==============================",
      "platform linux -- Python 3.12.3, pytest-8.2.0, pluggy-1.5.0",
      "collected 5 items",
      "",
      "tests/test_math.py ..F.s                                                 [100%]",
      "",
      "=================================== FAILURES ===================================",
      "=========================== short test summary info ============================",
      "FAILED tests/test_math.py::test_div - ZeroDivisionError: division by zero",
      `${ESC}[31m==================== ${ESC}[31m${ESC}[1m1 failed${ESC}[0m, ${ESC}[32m3 passed${ESC}[0m, ${ESC}[33m1 skipped${ESC}[0m${ESC}[31m in 0.12s${ESC}[0m${ESC}[31m ====================${ESC}[0m`,
    ].join("\n");
    expect(parseTestCounts(long)).toEqual({ passed: 3, failed: 1, skipped: 1 });
    expect(parseTestCounts("....F\n3 passed, 1 failed in 0.12s\n")).toEqual({ passed: 3, failed: 1 });
    expect(parseTestCounts("===== 2 passed =====")).toEqual({ passed: 2, failed: 0 });
    expect(parseTestCounts("==== 1 passed, 2 errors, 1 warning in 1.01s ====")).toEqual({ passed: 1, failed: 2 });
  });

  it("reads go test's per-test lines with -v", () => {
    const output = [
      "=== RUN   TestAdd",
      "--- PASS: TestAdd (0.00s)",
      "=== RUN   TestSub",
      "    sub_test.go:12: got 1, want 2",
      "--- FAIL: TestSub (0.00s)",
      "=== RUN   TestTable",
      "=== RUN   TestTable/one",
      "    --- PASS: TestTable/one (0.00s)",
      "--- PASS: TestTable (0.00s)",
      "--- SKIP: TestSlow (0.00s)",
      "FAIL",
      "FAIL\texample.com/calc\t0.004s",
    ].join("\n");
    expect(parseTestCounts(output)).toEqual({ passed: 2, failed: 1, skipped: 1 });
  });

  it("counts go test's package lines without -v", () => {
    const output = [
      "ok  \texample.com/app/api\t0.012s",
      "ok  \texample.com/app/store\t(cached)",
      "?   \texample.com/app/cmd\t[no test files]",
      "--- FAIL: TestParse (0.00s)",
      "    parse_test.go:9: unexpected token",
      "FAIL",
      "FAIL\texample.com/app/parse\t0.006s",
      "FAIL\texample.com/app/broken [build failed]",
      "FAIL",
    ].join("\n");
    expect(parseTestCounts(output)).toEqual({ passed: 2, failed: 2 });
    expect(parseTestCounts("--- FAIL: TestA (0.00s)\n--- FAIL: TestB (0.01s)\nFAIL\n")).toEqual({ passed: 0, failed: 2 });
  });

  it("sums cargo's results over test binaries", () => {
    const output = [
      `${ESC}[0m${ESC}[1m${ESC}[32m   Compiling${ESC}[0m calc v0.1.0 (/src)`,
      "     Running unittests src/lib.rs (target/debug/deps/calc-1a2b)",
      "running 3 tests",
      "test tests::adds ... ok",
      "test tests::subtracts ... ok",
      "test tests::slow ... ignored",
      "",
      "test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s",
      "",
      "     Running tests/api.rs (target/debug/deps/api-3c4d)",
      "running 2 tests",
      "test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
      "   Doc-tests calc",
      "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s",
    ].join("\n");
    expect(parseTestCounts(output)).toEqual({ passed: 3, failed: 1, skipped: 1 });
  });

  it("reads mocha's and a plain runner's summaries", () => {
    expect(parseTestCounts("  adds\n    ✓ works\n\n  4 passing (12ms)\n  1 pending\n  2 failing\n")).toEqual({
      passed: 4,
      failed: 2,
      skipped: 1,
    });
    expect(parseTestCounts("Summary: 7 passed, 2 failed\n")).toEqual({ passed: 7, failed: 2 });
    expect(parseTestCounts("Result: 7 passed\n")).toEqual({ passed: 7, failed: 0 });
  });

  it("returns null when no summary is recognised", () => {
    expect(parseTestCounts("")).toBeNull();
    expect(parseTestCounts("npm ERR! missing script: test\n")).toBeNull();
    expect(parseTestCounts(`${ESC}[31mError: Cannot find module 'vitest'${ESC}[39m`)).toBeNull();
  });
});
