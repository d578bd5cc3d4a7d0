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
  TransferCmd,
} from '../protocol/types.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import { transferView } from '../protocol/reply-codec.js';
import { Status, type Account, type ShardState, type TenantBook } from './ledger-book.js';

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

/** Logical ms of a hold's automatic void, or null (the transfer has no timeout). */
export function expiresAt(book: TenantBook, i: number): number | null {
  const t = book.transfers;
  const extra = t.extras.get(i);
  if (extra === undefined || t.status[i] === Status.rejected || !extra.pending ||
    !extra.timeoutSeconds) {
    return null;
  }
  return (t.time[i] ?? 0) + extra.timeoutSeconds * 1000;
}

/**
 * Transfer `i` of `book`. `original`: the view as the creating call answered it (what a
 * replay returns); otherwise the current status.
 */
export function transactionView(book: TenantBook, i: number, original: boolean): TransactionView {
  const t = book.transfers;
  const pending = t.isPending(i);
  const statusCode = original ? (pending ? Status.pending : Status.posted) : t.statusOf(i);
  const status = STATUS_NAMES[statusCode];
  const id = t.ids.keyAt(i);
  if (status === undefined) throw new Error(`ledger: ${id} has no view (rejection)`);
  const from = book.account(t.from[i] ?? -1);
  const extra = t.extras.get(i);
  return {
    id,
    status,
    fromAccountId: from.id,
    toAccountId: book.account(t.to[i] ?? -1).id,
    amountMinor: t.amountOf(i),
    postedAmountMinor: original && pending ? 0n : t.postedOf(i),
    currencyCode: extra === undefined ? from.currencyCode : extra.currencyCode,
    description: extra === undefined ? null : extra.description,
    paymentTypeId: extra === undefined ? null : extra.paymentTypeId,
    createdAt: t.time[i] ?? 0,
    sequence: t.sequence[i] ?? 0,
    expiresAt: expiresAt(book, i),
  };
}

/** The answer to the call that just created a transfer, straight from its command. */
export function createdView(cmd: TransferCmd, entry: JournalEntry): TransactionView {
  return transferView(cmd, entry.time, entry.sequence);
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
  const book = state.tenants.get(tenant);
  const i = book === undefined ? -1 : book.transfers.ids.find(cmd.id);
  if (book === undefined || i === -1 || book.transfers.status[i] === Status.rejected) {
    return failure('transaction_not_found');
  }
  return { ok: true, created: false, value: transactionView(book, i, false) };
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
  const length = account.historyLength;
  const start = parseCursor(cmd.after, length);
  if (start === null) return failure('invalid_cursor');
  const end = Math.min(length, start + Math.min(cmd.limit, MAX_PAGE));
  const entries: AccountEntryView[] = [];
  for (let i = start; i < end; i++) {
    const row = account.book.historyRow(account, i);
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
  const next = end < length ? String(end) : null;
  const page: EntriesPage = { entries, next, currencyCode: account.currencyCode };
  return { ok: true, created: false, value: page };
}
