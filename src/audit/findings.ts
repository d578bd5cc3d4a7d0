// The auditor's result records: findings, balances, statements and per-shard reports. Plain
// data that crosses worker threads and becomes the JSON report; never holds live state.

/** What was checked, in the order an auditor reads them. */
export type Check =
  | 'read'
  | 'shard'
  | 'sequence'
  | 'prev-hash'
  | 'hash'
  | 'replay'
  | 'duplicate-id'
  | 'two-phase'
  | 'currency'
  | 'negative-balance'
  | 'double-entry'
  | 'invariant'
  | 'statement'
  | 'snapshot'
  | 'live';

/** One precise disagreement: where (shard, sequence), which check, expected vs found. */
export interface Finding {
  shard: number;
  /** the sequence the finding is about (the journal position, or the state's sequence) */
  sequence: number;
  check: Check;
  expected: string;
  found: string;
  detail: string;
}

/** An account's totals in minor units (decimal strings, so the JSON report is exact). */
export interface BalanceRow {
  shard: number;
  tenant: string;
  accountId: string;
  currencyCode: string;
  allowNegative: boolean;
  /** postedCredits - postedDebits */
  balanceMinor: string;
  postedDebits: string;
  postedCredits: string;
  pendingDebits: string;
  pendingCredits: string;
}

export interface StatementRow {
  sequence: number;
  time: string;
  kind: string;
  transactionId: string;
  counterpartyAccountId: string;
  direction: 'debit' | 'credit' | '';
  amountMinor: string;
  /** signed change of the posted balance by this entry */
  postedChangeMinor: string;
  /** posted balance after the entry */
  balanceMinor: string;
  /** balance minus pending debits after the entry */
  availableMinor: string;
}

export interface Statement {
  shard: number;
  tenant: string;
  accountId: string;
  currencyCode: string;
  from: string;
  to: string;
  openingBalanceMinor: string;
  openingAvailableMinor: string;
  closingBalanceMinor: string;
  closingAvailableMinor: string;
  rows: StatementRow[];
}

export interface ShardReport {
  shard: number;
  /** records read (including any past a chain break that were not replayed) */
  entries: number;
  /** entries applied to the replayed state */
  replayed: number;
  /** the last verified chain position */
  head: { sequence: number; hashHex: string };
  findings: Finding[];
  /** findings left out after the per-shard cap */
  findingsDropped: number;
  /** things an operator should know that are not findings (a torn, unacknowledged tail) */
  notices: string[];
  /** balances at the requested point, or at the end when asked for (null otherwise) */
  balances: BalanceRow[] | null;
  /** where the balances were taken */
  balancesAt: { sequence: number; time: number } | null;
  statement: Statement | null;
  snapshot: { sequence: number; matched: boolean } | null;
  /** per tenant and currency: accounts and the sum of balances at the end (must be 0) */
  totals: { tenant: string; currencyCode: string; accounts: number; sumMinor: string }[];
  seconds: number;
}

export const FINDINGS_PER_SHARD_MAX = 100;
