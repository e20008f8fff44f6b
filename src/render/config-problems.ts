/** The body (without its marker) of the one comment that lists an invalid config's problems. */
export function renderConfigProblems(problems: readonly string[], defaultBranch: string): string {
  return [
    "⛔ `.github/mission-control.yml` is invalid, so Mission Control stopped before any model call or repository command: " +
      "the limits and budgets it sets cannot be trusted until the file validates.",
    "",
    ...problems.map((p) => `- \`${p.replace(/`/g, "'")}\``),
    "",
    `Fix the file on the default branch (\`${defaultBranch}\`), then comment \`/retry\`. The server's own limits apply as always.`,
  ].join("\n");
}
