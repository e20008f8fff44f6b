import { z } from "zod";

import { ConfigError, UnknownModelError } from "./errors.js";
import { parseDecimal } from "./money.js";

/**
 * Decimal places a price in USD per million tokens may have: 3, so that it is a whole number of
 * nano-dollars per token ($0.001/MTok = 1 n$/token) and every cost is an exact integer.
 */
export const PRICE_DECIMALS = 3;

/**
 * USD per million tokens to nano-dollars per token, exactly from the price's decimal text
 * (1 USD/MTok = 10⁹ n$ / 10⁶ tokens = 1 000 n$/token).
 *
 * @throws {RangeError} for a price with more than {@link PRICE_DECIMALS} decimals, negative, or not finite
 */
export function usdPerMTokToNanoPerToken(usdPerMTok: number): number {
  if (!Number.isFinite(usdPerMTok) || usdPerMTok < 0) throw new RangeError(`price ${usdPerMTok} must be a finite, non-negative USD amount per million tokens`);
  const nano = Number(parseDecimal(String(usdPerMTok), PRICE_DECIMALS));
  if (!Number.isSafeInteger(nano)) throw new RangeError(`price ${usdPerMTok} USD per million tokens is out of range`);
  return nano;
}

const hasPriceDecimals = (usdPerMTok: number): boolean => {
  try {
    usdPerMTokToNanoPerToken(usdPerMTok);
    return true;
  } catch {
    return false;
  }
};

const usdPerMTok = z
  .number()
  .nonnegative()
  .refine(hasPriceDecimals, `must have at most ${PRICE_DECIMALS} decimal places (USD per million tokens, so that a token costs whole nano-dollars)`);

/**
 * USD per million tokens for each kind of token a Messages API call is billed for, at most
 * {@link PRICE_DECIMALS} decimals each (more precision is refused, not rounded).
 */
export const ModelPrice = z
  .object({
    input: usdPerMTok,
    output: usdPerMTok,
    /** Writing to the 5-minute prompt cache (`cache_control: {type: "ephemeral"}`). */
    cache_write_5m: usdPerMTok,
    /** Writing to the 1-hour prompt cache (`ttl: "1h"`). */
    cache_write_1h: usdPerMTok,
    /** Reading from the prompt cache (cache hits and refreshes). */
    cache_read: usdPerMTok,
  })
  .strict();
export type ModelPrice = z.infer<typeof ModelPrice>;

/** A {@link ModelPrice} in nano-dollars per token (integers), the unit costs are computed in. */
export type ModelPriceNanoUsd = { readonly [K in keyof ModelPrice]: number };

/** The price in nano-dollars per token of each kind of token. */
export function toNanoPrice(price: ModelPrice): ModelPriceNanoUsd {
  return {
    input: usdPerMTokToNanoPerToken(price.input),
    output: usdPerMTokToNanoPerToken(price.output),
    cache_write_5m: usdPerMTokToNanoPerToken(price.cache_write_5m),
    cache_write_1h: usdPerMTokToNanoPerToken(price.cache_write_1h),
    cache_read: usdPerMTokToNanoPerToken(price.cache_read),
  };
}

/**
 * A built-in price from its input and output prices (USD per million tokens). The derived cache
 * prices of these whole-dollar inputs are short decimals (2.5, 0.2), which a double holds as
 * its nearest value and `String()` prints back exactly; {@link toNanoPrice} checks it.
 */
const price = (input: number, output: number): ModelPrice => ({
  input,
  output,
  cache_write_5m: (input * 125) / 100,
  cache_write_1h: input * 2,
  cache_read: input / 10,
});

/**
 * Built-in prices, USD per million tokens, from https://platform.claude.com/docs/en/about-claude/pricing
 * (read on 2026-11-21). Cache writes are 1.25×
 * (5 minutes) and 2× (1 hour) the input price and cache reads 0.1×, as that page states.
 * Every price has at most {@link PRICE_DECIMALS} decimals (a {@link PriceTable} refuses others).
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
  /** The same prices in nano-dollars per token, converted once. */
  readonly #nanoPrices: Map<string, ModelPriceNanoUsd>;

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
    this.#nanoPrices = new Map([...this.#prices].map(([model, p]) => [model, toNanoPrice(p)]));
  }

  /**
   * The price of a model. A dated snapshot id (`claude-sonnet-5-5-20260928`) takes the price
   * of its alias; anything else must match exactly.
   *
   * @throws {UnknownModelError} when no price is on file — an unknown model never costs 0.
   */
  priceOf(model: string): ModelPrice {
    return lookUp(this.#prices, model);
  }

  /**
   * The price of a model in nano-dollars per token (see {@link priceOf} for the lookup).
   *
   * @throws {UnknownModelError} when no price is on file
   */
  nanoPriceOf(model: string): ModelPriceNanoUsd {
    return lookUp(this.#nanoPrices, model);
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
   * Cost of one call in nano-dollars, exactly: each token kind times its price in n$ per token,
   * in integers. Cache writes are priced by TTL when the API splits them, otherwise as 5-minute
   * writes.
   *
   * @returns nano-dollars (a safe integer)
   * @throws {UnknownModelError} for a model with no price
   * @throws {RangeError} for a token count that is not a non-negative integer, or a cost beyond a safe integer
   */
  costNanoUsd(model: string, usage: TokenUsage): number {
    const p = this.nanoPriceOf(model);
    const cacheWrite = usage.cache_creation_input_tokens ?? 0;
    const write1h = usage.cache_creation?.ephemeral_1h_input_tokens ?? 0;
    const write5m = usage.cache_creation ? (usage.cache_creation.ephemeral_5m_input_tokens ?? 0) : cacheWrite;
    const cost =
      tokens(usage.input_tokens) * BigInt(p.input) +
      tokens(usage.output_tokens) * BigInt(p.output) +
      tokens(write5m) * BigInt(p.cache_write_5m) +
      tokens(write1h) * BigInt(p.cache_write_1h) +
      tokens(usage.cache_read_input_tokens ?? 0) * BigInt(p.cache_read);
    const nano = Number(cost);
    if (!Number.isSafeInteger(nano)) throw new RangeError(`cost ${cost} n$ does not fit a JS number exactly`);
    return nano;
  }
}

function tokens(count: number): bigint {
  if (!Number.isSafeInteger(count) || count < 0) throw new RangeError(`token count ${count} must be a non-negative integer`);
  return BigInt(count);
}

/** A dated snapshot id (`claude-sonnet-5-5-20260928`) takes the price of its alias; anything else must match exactly. */
function lookUp<T>(prices: ReadonlyMap<string, T>, model: string): T {
  const exact = prices.get(model);
  if (exact) return exact;
  const alias = /^(.*)-\d{8}$/.exec(model)?.[1];
  const aliased = alias === undefined ? undefined : prices.get(alias);
  if (aliased) return aliased;
  throw new UnknownModelError(model);
}
