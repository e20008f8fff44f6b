// Runs once before any test file (vitest `globalSetup`). The suite drives the real sandbox:
// bubblewrap (`bwrap`), util-linux (`prlimit`, and `setpriv` as root) and git. Without them
// most tests would fail one by one after long timeouts; instead the run stops here at once,
// with one line that names what is missing and the command that installs it.
//
// Self-contained on purpose (node: modules only): it must work whatever state src/ is in.
import { spawnSync } from "node:child_process";
import { accessSync, constants, statSync, writeSync } from "node:fs";
import path from "node:path";

const INSTALL = "apt-get install -y bubblewrap git util-linux";
const PROBE_TIMEOUT_MS = 10_000;

/** Where `name` is on PATH, or null. */
function onPath(name: string): string | null {
  for (const dir of (process.env.PATH ?? "").split(path.delimiter)) {
    if (!dir) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      if (statSync(candidate).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Runs `true` in bubblewrap with the namespaces the sandbox asks for (as root: no user
 * namespace, as in `workspace/sandbox`; otherwise an unprivileged user namespace).
 *
 * @returns null when it worked, else bwrap's first line of error
 */
function probeBwrap(bwrap: string): string | null {
  const unshare = isRoot() ? ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net"] : ["--unshare-all"];
  const result = spawnSync(bwrap, ["--die-with-parent", ...unshare, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "true"], {
    encoding: "utf8",
    timeout: PROBE_TIMEOUT_MS,
    stdio: ["ignore", "ignore", "pipe"],
  });
  if (result.status === 0) return null;
  if (result.error) return result.error.message;
  const detail = result.stderr.trim().split("\n")[0]?.replace(/\.$/, "");
  return detail || `exited with ${result.status ?? result.signal}`;
}

/** The one line that says why the suite cannot run here, or null when it can. */
export function missingPrerequisites(): string | null {
  const wanted: Array<[command: string, pkg: string]> = [
    ["bwrap", "bubblewrap"],
    ["prlimit", "util-linux"],
    ["git", "git"],
  ];
  if (isRoot()) wanted.push(["setpriv", "util-linux"]);
  const missing = wanted.filter(([command]) => onPath(command) === null);
  if (missing.length > 0) {
    const names = missing.map(([command, pkg]) => (command === pkg ? command : `${command} (${pkg})`)).join(", ");
    return `Cannot run the tests: ${names} not found on PATH. Install the prerequisites with: ${INSTALL}`;
  }
  const failure = probeBwrap(onPath("bwrap")!);
  if (failure !== null) {
    return `Cannot run the tests: bwrap cannot create the sandbox's namespaces here (${failure}). Run them as root or allow unprivileged user namespaces (docs/OPERATIONS.md, "The sandbox in a container").`;
  }
  return null;
}

export function setup(): void {
  const problem = missingPrerequisites();
  if (problem === null) return;
  // Printed and exited rather than thrown: vitest 4 answers an error thrown here with a stack and
  // a misleading "No test files found" block around it.
  writeSync(2, `\n${problem}\n\n`);
  process.exit(1);
}
