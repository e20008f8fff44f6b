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
    allowOnly: false,
    passWithNoTests: false,
  },
});
