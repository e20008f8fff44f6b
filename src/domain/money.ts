/**
 * Money, exactly. Every amount the app stores, sums or compares is an integer number of
 * **nano-dollars** (n$): 1 USD = 10⁹ n$. A price of $0.03 per million tokens is 30 n$ per token,
 * so any price with at most 3 decimals per million tokens costs a whole number of n$ per token,
 * and a call's cost (tokens × n$ per token) is an exact integer.
 *
 * Amounts are JS numbers holding safe integers (|n| ≤ 2⁵³ − 1 n$, about USD 9 million): every
 * conversion here checks that and throws rather than rounds. USD as a JS number
 * ({@link nanoToUsd}) is for display and metrics only, never for sums or comparisons.
 *
 * No I/O.
 */

/** Nano-dollars in one US dollar. */
export const NANO_USD_PER_USD = 1_000_000_000;

/** Decimal places of a USD amount that a whole number of nano-dollars can hold. */
export const USD_DECIMALS = 9;

/** How {@link parseDecimal} treats digits beyond the requested scale. */
export type DecimalRounding = "exact" | "half-up";

/** Longest exponent {@link parseDecimal} accepts (`1e999999` would be a huge BigInt, not money). */
const MAX_EXPONENT = 100;

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Parses decimal text to the integer `value × 10^scale`, exactly (no binary floating point).
 * Accepts an optional sign, digits with an optional fraction, and an optional exponent
 * (`12`, `0.03`, `.5`, `2.5e-7`, as JS prints small numbers); surrounding spaces are ignored.
 *
 * @param text - the decimal text
 * @param scale - decimal places kept (≥ 0): 9 turns USD into nano-dollars
 * @param rounding - `exact` (default) refuses text with more than `scale` significant decimals;
 *   `half-up` rounds them away, halves away from zero
 * @throws {RangeError} for text that is not a decimal number, or has more decimals than `scale` under `exact`
 */
export function parseDecimal(text: string, scale: number, rounding: DecimalRounding = "exact"): bigint {
  const match = DECIMAL.exec(text.trim());
  const [, sign = "", whole = "", fraction = "", exponentText = "0"] = match ?? [];
  if (!match || whole.length + fraction.length === 0) throw new RangeError(`"${text}" is not a decimal number`);
  const exponent = Number(exponentText);
  if (Math.abs(exponent) > MAX_EXPONENT) throw new RangeError(`"${text}" is out of range`);
  const digits = BigInt(whole + fraction);
  // value = digits × 10^(exponent − fraction.length); scaled = value × 10^scale.
  const shift = exponent - fraction.length + scale;
  let magnitude: bigint;
  if (shift >= 0) {
    magnitude = digits * 10n ** BigInt(shift);
  } else {
    const divisor = 10n ** BigInt(-shift);
    const remainder = digits % divisor;
    magnitude = digits / divisor;
    if (remainder !== 0n) {
      if (rounding === "exact") throw new RangeError(`"${text}" has more than ${scale} decimal places`);
      if (remainder * 2n >= divisor) magnitude += 1n;
    }
  }
  return sign === "-" ? -magnitude : magnitude;
}

/** `value` as a JS number, or a RangeError when it is not a safe integer. */
function toSafeNumber(value: bigint, what: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`${what} ${value} does not fit a JS number exactly`);
  return n;
}

/**
 * USD to nano-dollars, exactly from the amount's decimal text.
 *
 * A string is read as written (`"0.1"` → 100 000 000). A number is read from its shortest
 * round-trip decimal text (`String(0.1)` is `"0.1"`), which is the text an operator typed in
 * YAML or JSON for any amount of up to 15 significant digits.
 *
 * @param usd - USD, as decimal text or a number
 * @param rounding - `exact` (default) refuses more than 9 decimals; `half-up` rounds them away
 * @returns nano-dollars (a safe integer)
 * @throws {RangeError} for a non-finite number, text that is not a decimal, more than 9 decimals under `exact`, or more than about USD 9 million
 */
export function usdToNano(usd: number | string, rounding: DecimalRounding = "exact"): number {
  if (typeof usd === "number" && !Number.isFinite(usd)) throw new RangeError(`USD amount ${usd} is not finite`);
  return toSafeNumber(parseDecimal(String(usd), USD_DECIMALS, rounding), "nano-dollar amount");
}

/**
 * Nano-dollars to USD as a JS number: for display and metrics only (the result is the double
 * nearest the exact amount; never sum or compare it — sum and compare nano-dollars).
 */
export function nanoToUsd(nanoUsd: number): number {
  return nanoUsd / NANO_USD_PER_USD;
}

/** `true` when `value` is a valid stored amount: a non-negative safe integer of nano-dollars. */
export function isNanoUsd(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Checks an amount before it is stored or compared.
 *
 * @param value - nano-dollars
 * @param what - names the amount in the error (`amountNanoUsd`)
 * @throws {RangeError} unless `value` is a non-negative safe integer
 */
export function assertNanoUsd(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${what} must be a non-negative whole number of nano-dollars, got ${value}`);
}

/**
 * `a + b` in nano-dollars.
 *
 * @throws {RangeError} when the sum is not a safe integer (it would be rounded)
 */
export function addNanoUsd(a: number, b: number): number {
  const sum = a + b;
  if (!Number.isSafeInteger(sum) || !Number.isSafeInteger(a) || !Number.isSafeInteger(b)) throw new RangeError(`${a} + ${b} n$ is not a safe integer`);
  return sum;
}

/**
 * An integer amount of nano-dollars as the database returns it: a number (SQLite, PostgreSQL
 * `bigint`), a bigint, or decimal text (PostgreSQL `numeric`, e.g. a `sum` of `bigint`, or a
 * sum cast to text). Parsed exactly.
 *
 * @throws {RangeError} for a value that is not an integer, or not a safe one
 */
export function parseNanoUsd(value: unknown): number {
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new RangeError(`nano-dollar amount ${value} is not a safe integer`);
    return value;
  }
  if (typeof value === "bigint") return toSafeNumber(value, "nano-dollar amount");
  if (typeof value === "string" && /^-?\d+$/.test(value)) return toSafeNumber(BigInt(value), "nano-dollar amount");
  throw new RangeError(`${String(value)} is not a whole number of nano-dollars`);
}

/**
 * Nano-dollars as `$1.2346`: `decimals` places (4 by default, since one call costs fractions of
 * a cent), rounded half-up from the exact amount.
 *
 * @param nanoUsd - nano-dollars (a safe integer)
 * @param decimals - 0 to 9
 */
export function formatNanoUsd(nanoUsd: number, decimals = 4): string {
  if (!Number.isInteger(decimals) || decimals < 0 || decimals > USD_DECIMALS) throw new RangeError(`decimals must be 0 to ${USD_DECIMALS}`);
  const amount = BigInt(parseNanoUsd(nanoUsd));
  const magnitude = amount < 0n ? -amount : amount;
  const unit = 10n ** BigInt(USD_DECIMALS - decimals);
  const rounded = (magnitude + unit / 2n) / unit; // unit / 2n is 0 when decimals = 9: no rounding needed
  const places = 10n ** BigInt(decimals);
  const whole = (rounded / places).toString();
  const fraction = decimals === 0 ? "" : `.${(rounded % places).toString().padStart(decimals, "0")}`;
  return `${amount < 0n && rounded !== 0n ? "-" : ""}$${whole}${fraction}`;
}
