/** Token and cost totals. Token counts are in tokens, cost in USD. */
export interface UsageTotals {
  calls: number;
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
}
