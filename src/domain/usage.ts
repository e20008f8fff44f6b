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
