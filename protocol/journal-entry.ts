// The journal row: one fact the state machine decided, in shard order. Replaying a shard's
// entries in sequence through `applyEntry` rebuilds its state exactly. No I/O here.

import type { EntryKind } from './types.js';

export interface JournalEntry {
  shard: number;
  /** per shard, 1, 2, 3, ... without gaps */
  sequence: number;
  /** owner epoch (fencing token) of the writer */
  epoch: number;
  kind: EntryKind;
  tenant: string;
  /** transaction id; for 'account-open' the account id */
  id: string;
  /** from account (debited); '' for 'account-open' */
  debitAccountId: string;
  /** to account (credited); for 'account-open' the account id */
  creditAccountId: string;
  /**
   * post / pending: the amount; post-pending: the amount posted; void: the amount released;
   * reject: the amount requested; account-open: 0n
   */
  amountMinor: bigint;
  currencyCode: string;
  /** logical time in ms since the Unix epoch; never decreases within a shard */
  time: number;
  /**
   * kind-specific extras as canonical JSON, '' when none:
   * account-open {allowNegative, metadata}; post/pending {description, paymentTypeId,
   * timeoutSeconds}; void {reason: 'client' | 'timeout'}; reject {code, pending,
   * description, paymentTypeId, timeoutSeconds}
   */
  detail: string;
}

export const HASH_BYTES = 32;
export const ZERO_HASH: Uint8Array = new Uint8Array(HASH_BYTES);

export const ENTRY_KINDS: readonly EntryKind[] = [
  'account-open',
  'post',
  'pending',
  'post-pending',
  'void',
  'reject',
];
