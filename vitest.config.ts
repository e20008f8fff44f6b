import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Stops the run at once, with one line, when bubblewrap, util-linux or git is missing.
    globalSetup: ["test/global-setup.ts"],
    setupFiles: ["test/helpers/setup.ts"],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: "forks",
    // Most tests wait on child processes (git, bubblewrap, app replicas), timers and loopback HTTP,
    // not on the CPU: three forks on the 2-core machines take the suite from 321 s to 170 s.
    maxWorkers: 3,
    allowOnly: false,
    passWithNoTests: false,
  },
});
