import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { parse as parseYaml } from "yaml";
import { z } from "zod";

/** The agents that have a system prompt in `prompts/<agent>.md` (`answer`: the Reviewer answering an @-mention). */
export type AgentName = "architect" | "coder" | "reviewer" | "tester" | "answer";

const FrontMatter = z
  .object({
    /** Default `max_tokens` for this agent's calls. */
    max_tokens: z.number().int().positive().optional(),
  })
  .strict();

/** A system prompt and the settings in its front-matter. */
export interface PromptFile {
  text: string;
  maxTokens: number | undefined;
}

const PROMPTS_DIR = fileURLToPath(new URL("../../prompts/", import.meta.url));
const cache = new Map<AgentName, PromptFile>();

/**
 * Loads `prompts/<agent>.md` once (front-matter between `---` lines is parsed as YAML).
 *
 * @throws when the file is missing or its front-matter is invalid — a packaging error, fatal
 */
export function loadPrompt(agent: AgentName): PromptFile {
  const cached = cache.get(agent);
  if (cached) return cached;
  const raw = readFileSync(`${PROMPTS_DIR}${agent}.md`, "utf8");
  const match = /^---\n([\s\S]*?)\n---\n/.exec(raw);
  const meta = FrontMatter.parse(match ? (parseYaml(match[1] ?? "") ?? {}) : {});
  const prompt = { text: (match ? raw.slice(match[0].length) : raw).trim(), maxTokens: meta.max_tokens };
  cache.set(agent, prompt);
  return prompt;
}
