// Commands (imperative, validated at the edge) and results (plain records) exchanged between
// the gateway, the shard actors and clients. Money is bigint minor units everywhere inside.

import type { ErrorRecord } from './errors.js';

export const MAX_BATCH = 8190;
export const DEFAULT_SHARD_COUNT = 64;

export interface CreateAccountCmd {
  op: 'createAccount';
  id: string;
  currencyCode: string;
  allowNegative: boolean;
  /** canonical JSON of the metadata object ('{}' when absent) */
  metadata: string;
}

export interface TransferCmd {
  op: 'transfer';
  id: string;
  fromAccountId: string;
  toAccountId: string;
  amountMinor: bigint;
  currencyCode: string;
  description: string | null;
  paymentTypeId: string | null;
  pending: boolean;
  timeoutSeconds: number | null;
}

export interface PostCmd {
  op: 'post';
  id: string;
  /** null: post the whole pending amount (or `amountDecimal`, when given) */
  amountMinor: bigint | null;
  /**
   * a decimal amount as sent (`"20.00"`), converted by the shard with the transaction's own
   * currency exponent, since only the shard knows that currency
   */
  amountDecimal?: string | null;
  /** when the client names a currency, it must be the transaction's */
  currencyCode?: string | null;
}

export interface VoidCmd {
  op: 'void';
  id: string;
}

export interface TransferBatchCmd {
  op: 'transferBatch';
  atomic: boolean;
  transactions: TransferCmd[];
}

export interface GetAccountCmd {
  op: 'getAccount';
  id: string;
}

export interface GetTransactionCmd {
  op: 'getTransaction';
  id: string;
}

export interface ListEntriesCmd {
  op: 'listEntries';
  accountId: string;
  limit: number;
  /** opaque cursor from a previous page, or null for the first page */
  after: string | null;
}

export type WriteCommand = CreateAccountCmd | TransferCmd | PostCmd | VoidCmd | TransferBatchCmd;
export type ReadCommand = GetAccountCmd | GetTransactionCmd | ListEntriesCmd;
export type Command = WriteCommand | ReadCommand;
export type Op = Command['op'];

/** A command addressed to one tenant; the gateway fills `tenant` from the credential. */
export interface Envelope {
  tenant: string;
  cmd: Command;
}

export interface AccountView {
  id: string;
  currencyCode: string;
  allowNegative: boolean;
  metadata: string;
  /** postedCredits - postedDebits */
  balanceMinor: bigint;
  postedDebits: bigint;
  postedCredits: bigint;
  pendingDebits: bigint;
  pendingCredits: bigint;
  createdAt: number;
}

export type TransactionStatus = 'posted' | 'pending' | 'voided';

export interface TransactionView {
  id: string;
  status: TransactionStatus;
  fromAccountId: string;
  toAccountId: string;
  /** the amount requested (for a partially posted pending transfer: the original hold) */
  amountMinor: bigint;
  /** the amount that moved (posted), 0 while pending or when voided */
  postedAmountMinor: bigint;
  currencyCode: string;
  description: string | null;
  paymentTypeId: string | null;
  createdAt: number;
  /** journal sequence of the entry that created it */
  sequence: number;
  /** logical ms when a pending transfer is voided automatically, else null */
  expiresAt: number | null;
}

export type EntryDirection = 'debit' | 'credit';

export interface AccountEntryView {
  sequence: number;
  transactionId: string;
  kind: EntryKind;
  direction: EntryDirection;
  amountMinor: bigint;
  createdAt: number;
}

export interface EntriesPage {
  entries: AccountEntryView[];
  next: string | null;
  /** the account's currency, so entries can carry decimal amounts */
  currencyCode?: string;
}

export type EntryKind = 'account-open' | 'post' | 'pending' | 'post-pending' | 'void' | 'reject';

export type Value = AccountView | TransactionView | EntriesPage | BatchResultValue;

export interface BatchResultValue {
  results: Outcome[];
}

/**
 * The result of one command. `created` distinguishes 201 (this call applied it) from 200
 * (an identical earlier call did, or a read).
 */
export type Outcome =
  | { ok: true; created: boolean; value: Value }
  | { ok: false; error: ErrorRecord };
