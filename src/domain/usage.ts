/** Token and cost totals. Token counts are in tokens, cost in nano-dollars (`domain/money.ts`). */
export interface UsageTotals {
  calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  /** Nano-dollars (1 USD = 10⁹ n$), an exact integer sum of the ledger rows. */
  cost_nano_usd: number;
}

/** The totals of no ledger rows: zero calls, tokens and nano-dollars. */
export const NO_USAGE: Readonly<UsageTotals> = {
  calls: 0,
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cost_nano_usd: 0,
};
