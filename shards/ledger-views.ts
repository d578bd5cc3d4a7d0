// Read side of the shard: plain views of accounts, transfers and entry pages, and the shared
// error outcomes. Views are fresh copies (never live records), so replies cannot change later.

import { ERRORS, errorRecord, type ErrorCode } from '../protocol/errors.js';
import type {
  AccountEntryView,
  AccountView,
  EntriesPage,
  GetAccountCmd,
  GetTransactionCmd,
  ListEntriesCmd,
  Outcome,
  TransactionStatus,
  TransactionView,
} from '../protocol/types.js';
import { Status, type Account, type ShardState, type TransferRecord } from './ledger-book.js';

/** Upper bound on one page of entries, whatever limit the caller asks for. */
export const MAX_PAGE = 1000;

/** One frozen outcome per code: rejections allocate nothing and cannot be mutated. */
const FAILURES = new Map<ErrorCode, Outcome>();
for (const code of Object.keys(ERRORS) as ErrorCode[]) {
  const error = Object.freeze(errorRecord(code));
  FAILURES.set(code, Object.freeze({ ok: false as const, error }));
}

export function failure(code: ErrorCode): Outcome {
  const outcome = FAILURES.get(code);
  if (outcome === undefined) throw new Error(`ledger: unknown error code ${code}`);
  return outcome;
}

export function accountView(account: Account): AccountView {
  return {
    id: account.id,
    currencyCode: account.currencyCode,
    allowNegative: account.allowNegative,
    metadata: account.metadata,
    balanceMinor: account.postedCredits - account.postedDebits,
    postedDebits: account.postedDebits,
    postedCredits: account.postedCredits,
    pendingDebits: account.pendingDebits,
    pendingCredits: account.pendingCredits,
    createdAt: account.createdAt,
  };
}

const STATUS_NAMES: Readonly<Record<number, TransactionStatus>> = {
  [Status.posted]: 'posted',
  [Status.pending]: 'pending',
  [Status.postedPending]: 'posted',
  [Status.voidedClient]: 'voided',
  [Status.voidedTimeout]: 'voided',
};

/**
 * `original`: the view as the creating call answered it (what a replay returns);
 * otherwise the current status.
 */
export function transactionView(record: TransferRecord, original: boolean): TransactionView {
  const statusCode = original ? (record.pending ? Status.pending : Status.posted) : record.status;
  const status = STATUS_NAMES[statusCode];
  if (status === undefined) throw new Error(`ledger: ${record.id} has no view (rejection)`);
  return {
    id: record.id,
    status,
    fromAccountId: record.fromAccountId,
    toAccountId: record.toAccountId,
    amountMinor: record.amountMinor,
    postedAmountMinor: original && record.pending ? 0n : record.postedAmountMinor,
    currencyCode: record.currencyCode,
    description: record.description,
    paymentTypeId: record.paymentTypeId,
    createdAt: record.createdAt,
    sequence: record.sequence,
    expiresAt: record.expiresAt,
  };
}

export function getAccount(state: ShardState, tenant: string, cmd: GetAccountCmd): Outcome {
  const account = state.tenants.get(tenant)?.accounts.get(cmd.id);
  if (account === undefined) return failure('account_not_found');
  return { ok: true, created: false, value: accountView(account) };
}

export function getTransaction(
  state: ShardState,
  tenant: string,
  cmd: GetTransactionCmd,
): Outcome {
  const record = state.tenants.get(tenant)?.transfers.get(cmd.id);
  if (record === undefined || record.status === Status.rejected) {
    return failure('transaction_not_found');
  }
  return { ok: true, created: false, value: transactionView(record, false) };
}

/** Cursors are the decimal index of the next history row: canonical digits only. */
function parseCursor(after: string | null, length: number): number | null {
  if (after === null) return 0;
  if (!/^(0|[1-9][0-9]{0,14})$/.test(after)) return null;
  const index = Number(after);
  return index <= length ? index : null;
}

export function listEntries(state: ShardState, tenant: string, cmd: ListEntriesCmd): Outcome {
  const account = state.tenants.get(tenant)?.accounts.get(cmd.accountId);
  if (account === undefined) return failure('account_not_found');
  if (!Number.isSafeInteger(cmd.limit) || cmd.limit < 1) return failure('invalid_request');
  const history = account.history;
  const start = parseCursor(cmd.after, history.length);
  if (start === null) return failure('invalid_cursor');
  const end = Math.min(history.length, start + Math.min(cmd.limit, MAX_PAGE));
  const entries: AccountEntryView[] = [];
  for (let i = start; i < end; i++) {
    const row = history[i];
    if (row === undefined) break;
    entries.push({
      sequence: row.sequence,
      transactionId: row.id,
      kind: row.kind,
      direction: row.kind !== 'account-open' && row.debitAccountId === account.id
        ? 'debit'
        : 'credit',
      amountMinor: row.amountMinor,
      createdAt: row.time,
    });
  }
  const page: EntriesPage = { entries, next: end < history.length ? String(end) : null };
  return { ok: true, created: false, value: page };
}
