import { z } from "zod";

/** File name Probot's `context.config` looks up under `.github/` on the default branch. */
export const REPO_CONFIG_FILE = "mission-control.yml";

const AgentModels = z
  .object({
    architect: z.string().min(1).optional(),
    coder: z.string().min(1).optional(),
    reviewer: z.string().min(1).optional(),
    tester: z.string().min(1).optional(),
  })
  .strict();

/**
 * `.github/mission-control.yml`, read from the repository's default branch only. Every key is
 * optional; unknown keys are refused so that a typo is reported instead of silently ignored.
 */
export const RepoConfig = z
  .object({
    /** The label that starts work on an issue. */
    trigger_label: z.string().min(1).max(50).default("agent"),
    /** Model per agent; each falls back to the server's DEFAULT_MODEL. */
    models: AgentModels.default({}),
    coder: z
      .object({
        /** Messages API calls the Coder may make for one job. */
        max_turns: z.number().int().min(1).max(200).default(30),
        /** `max_tokens` of each Coder call. */
        max_tokens: z.number().int().min(256).max(64_000).default(8_192),
      })
      .strict()
      .default({ max_turns: 30, max_tokens: 8_192 }),
  })
  .strict();
export type RepoConfig = z.infer<typeof RepoConfig>;

/** The configuration used when a repository has none, or an invalid one. */
export const DEFAULT_REPO_CONFIG: RepoConfig = RepoConfig.parse({});

/** Result of reading a repository's config: the config to use and, if the file was invalid, why. */
export interface RepoConfigResult {
  config: RepoConfig;
  /** Human-readable problems naming the bad keys; empty when the file was valid or absent. */
  problems: string[];
}

/**
 * Validates a parsed `.github/mission-control.yml`. Never throws: an invalid file yields the
 * safe defaults plus the list of problems, so the caller can report them.
 *
 * @param raw - the YAML document as parsed by Probot's config plugin (`null` when absent)
 */
export function parseRepoConfig(raw: unknown): RepoConfigResult {
  if (raw === null || raw === undefined) return { config: DEFAULT_REPO_CONFIG, problems: [] };
  const result = RepoConfig.safeParse(raw);
  if (result.success) return { config: result.data, problems: [] };
  const problems = result.error.issues.map((issue) => {
    const key = issue.path.length > 0 ? issue.path.join(".") : "(top level)";
    return `${key}: ${issue.message}`;
  });
  return { config: DEFAULT_REPO_CONFIG, problems };
}
