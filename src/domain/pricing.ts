import { z } from "zod";

import { ConfigError, UnknownModelError } from "./errors.js";

/** USD per million tokens for each kind of token a Messages API call is billed for. */
export const ModelPrice = z
  .object({
    input: z.number().nonnegative(),
    output: z.number().nonnegative(),
    /** Writing to the 5-minute prompt cache (`cache_control: {type: "ephemeral"}`). */
    cache_write_5m: z.number().nonnegative(),
    /** Writing to the 1-hour prompt cache (`ttl: "1h"`). */
    cache_write_1h: z.number().nonnegative(),
    /** Reading from the prompt cache (cache hits and refreshes). */
    cache_read: z.number().nonnegative(),
  })
  .strict();
export type ModelPrice = z.infer<typeof ModelPrice>;

const price = (input: number, output: number): ModelPrice => ({
  input,
  output,
  cache_write_5m: input * 1.25,
  cache_write_1h: input * 2,
  cache_read: input / 10,
});

/**
 * Built-in prices, USD per million tokens, from https://platform.claude.com/docs/en/about-claude/pricing
 * (read on 2026-11-21). Cache writes are 1.25×
 * (5 minutes) and 2× (1 hour) the input price and cache reads 0.1×, as that page states.
 * Operators override or extend them with the MODEL_PRICES environment variable.
 */
export const BUILTIN_PRICES: Readonly<Record<string, ModelPrice>> = {
  "claude-sonnet-5-5": price(2, 10),
  "claude-sonnet-5": price(2, 10),
  "claude-sonnet-4-6": price(3, 15),
  "claude-sonnet-4-5": price(3, 15),
  "claude-opus-5": price(5, 25),
  "claude-opus-4-8": price(5, 25),
  "claude-opus-4-7": price(5, 25),
  "claude-opus-4-6": price(5, 25),
  "claude-opus-4-5": price(5, 25),
  "claude-haiku-4-5": price(1, 5),
};

/** Token counts as the Messages API reports them in `usage`. */
export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  /** Split of cache writes by TTL, when the API reports it. */
  cache_creation?: { ephemeral_5m_input_tokens?: number; ephemeral_1h_input_tokens?: number } | null;
}

/** A price table: built-in prices merged with the operator's overrides. */
export class PriceTable {
  readonly #prices: Map<string, ModelPrice>;

  /**
   * @param overrides - JSON text of `{ "<model>": ModelPrice }` (the MODEL_PRICES variable)
   * @throws {ConfigError} when the JSON or a price in it is malformed
   */
  constructor(overrides?: string) {
    this.#prices = new Map(Object.entries(BUILTIN_PRICES));
    if (overrides) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(overrides);
      } catch {
        throw new ConfigError("MODEL_PRICES is not valid JSON");
      }
      const result = z.record(z.string().min(1), ModelPrice).safeParse(parsed);
      if (!result.success) {
        throw new ConfigError(`MODEL_PRICES is invalid: ${result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
      }
      for (const [model, p] of Object.entries(result.data)) this.#prices.set(model, p);
    }
  }

  /**
   * The price of a model. A dated snapshot id (`claude-sonnet-5-5-20260928`) takes the price
   * of its alias; anything else must match exactly.
   *
   * @throws {UnknownModelError} when no price is on file — an unknown model never costs 0.
   */
  priceOf(model: string): ModelPrice {
    const exact = this.#prices.get(model);
    if (exact) return exact;
    const alias = /^(.*)-\d{8}$/.exec(model)?.[1];
    const aliased = alias === undefined ? undefined : this.#prices.get(alias);
    if (aliased) return aliased;
    throw new UnknownModelError(model);
  }

  /** `true` when {@link priceOf} would answer. */
  has(model: string): boolean {
    try {
      this.priceOf(model);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Cost of one call in USD: each token kind times its price per million. Cache writes are
   * priced by TTL when the API splits them, otherwise as 5-minute writes.
   *
   * @throws {UnknownModelError} for a model with no price
   */
  costUsd(model: string, usage: TokenUsage): number {
    const p = this.priceOf(model);
    const cacheWrite = usage.cache_creation_input_tokens ?? 0;
    const write1h = usage.cache_creation?.ephemeral_1h_input_tokens ?? 0;
    const write5m = usage.cache_creation ? (usage.cache_creation.ephemeral_5m_input_tokens ?? 0) : cacheWrite;
    const micros =
      usage.input_tokens * p.input +
      usage.output_tokens * p.output +
      write5m * p.cache_write_5m +
      write1h * p.cache_write_1h +
      (usage.cache_read_input_tokens ?? 0) * p.cache_read;
    return micros / 1_000_000;
  }
}
