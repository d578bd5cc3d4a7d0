// Journal replay: applies one persisted entry through the same effects the live path used, so
// snapshot + journal tail (or a whole journal, for audit) rebuilds the state exactly. It never
// re-decides business rules: an entry is a fact, and one that does not fit the state throws.

import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  type Account,
  NO_DETAILS,
  NO_TRANSFER_DETAIL,
  Status,
  VOID_CLIENT_DETAIL,
  VOID_TIMEOUT_DETAIL,
  bookFor,
  createTransfer,
  mustAccount,
  openAccount,
  recordRejection,
  settlePending,
  type ShardState,
  type TenantBook,
  type TransferBody,
  type TransferDetails,
} from './ledger-book.js';
import { WIDE } from './transfer-columns.js';

/**
 * What applyEntry tells a caller that asks (the auditor): the accounts a post, pending or
 * post-pending entry (or a void) moved money between, so it need not look them up again; both
 * null after an account-open or a reject.
 */
export interface MovedAccounts {
  from: Account | null;
  to: Account | null;
}

/**
 * Replay one persisted entry. Asserts entry.sequence === state.sequence + 1. When `moved` is
 * given, it is set to the accounts the entry moved money between.
 */
export function applyEntry(state: ShardState, entry: JournalEntry, moved?: MovedAccounts): void {
  if (entry.shard !== state.shard) {
    throw new Error(`applyEntry: entry of shard ${entry.shard} replayed into ${state.shard}`);
  }
  if (entry.sequence !== state.sequence + 1) {
    throw new Error(`applyEntry: sequence ${entry.sequence} after ${state.sequence}`);
  }
  if (!Number.isSafeInteger(entry.time) || entry.time < state.time) {
    throw new Error(`applyEntry: entry ${entry.sequence} goes back in time`);
  }
  state.sequence = entry.sequence;
  state.time = entry.time;
  if (entry.epoch > state.epoch) state.epoch = entry.epoch;
  const book = bookFor(state, entry.tenant);
  if (moved !== undefined) {
    moved.from = null;
    moved.to = null;
  }
  switch (entry.kind) {
    case 'account-open':
      replayOpen(book, entry);
      return;
    case 'post':
    case 'pending':
      replayTransfer(state, book, entry, moved);
      return;
    case 'post-pending':
    case 'void':
      replaySettle(state, book, entry, moved);
      return;
    case 'reject':
      replayReject(book, entry);
      return;
    default:
      throw new Error(`applyEntry: unknown kind in entry ${String(entry.sequence)}`);
  }
}

function fail(entry: JournalEntry, why: string): never {
  throw new Error(`applyEntry: entry ${entry.sequence} (${entry.kind} ${entry.id}): ${why}`);
}

function replayOpen(book: TenantBook, entry: JournalEntry): void {
  if (book.accounts.has(entry.creditAccountId)) fail(entry, 'account exists');
  // The live path wrote `{"allowNegative":<bool>,"metadata":<canonical json>}`; slicing keeps
  // the metadata byte-exact instead of trusting a parse/print round trip.
  let allowNegative: boolean;
  let rest: string;
  if (entry.detail.startsWith('{"allowNegative":true,"metadata":')) {
    allowNegative = true;
    rest = entry.detail.slice('{"allowNegative":true,"metadata":'.length);
  } else if (entry.detail.startsWith('{"allowNegative":false,"metadata":')) {
    allowNegative = false;
    rest = entry.detail.slice('{"allowNegative":false,"metadata":'.length);
  } else {
    fail(entry, 'malformed account-open detail');
  }
  if (!rest.endsWith('}')) fail(entry, 'malformed account-open detail');
  openAccount(book, entry, allowNegative, rest.slice(0, -1));
}

function parseDetail(entry: JournalEntry): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(entry.detail);
  } catch {
    fail(entry, 'detail is not JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    fail(entry, 'detail is not an object');
  }
  return parsed as Record<string, unknown>;
}

function nullableString(entry: JournalEntry, value: unknown): string | null {
  if (value === null || typeof value === 'string') return value;
  fail(entry, 'detail has a non-string text field');
}

function nullableInteger(entry: JournalEntry, value: unknown): number | null {
  if (value === null || Number.isSafeInteger(value)) return value as number | null;
  fail(entry, 'detail has a non-integer timeoutSeconds');
}

function detailsOf(entry: JournalEntry, detail: Record<string, unknown>): TransferDetails {
  return {
    description: nullableString(entry, detail['description']),
    paymentTypeId: nullableString(entry, detail['paymentTypeId']),
    timeoutSeconds: nullableInteger(entry, detail['timeoutSeconds']),
  };
}

function replayTransfer(
  state: ShardState,
  book: TenantBook,
  entry: JournalEntry,
  moved: MovedAccounts | undefined,
): void {
  if (book.transfers.ids.find(entry.id) !== -1) fail(entry, 'transaction exists');
  // The live path writes this exact text for most transfers: its parse is known, skip it.
  const details = entry.detail === NO_TRANSFER_DETAIL
    ? NO_DETAILS
    : detailsOf(entry, parseDetail(entry));
  const from = mustAccount(book, entry.debitAccountId);
  const to = mustAccount(book, entry.creditAccountId);
  createTransfer(state, book, entry, entry.kind === 'pending', details, from, to);
  if (moved !== undefined) {
    moved.from = from;
    moved.to = to;
  }
}

function voidReason(entry: JournalEntry): unknown {
  if (entry.detail === VOID_CLIENT_DETAIL) return 'client';
  if (entry.detail === VOID_TIMEOUT_DETAIL) return 'timeout';
  return parseDetail(entry)['reason'];
}

function replaySettle(
  state: ShardState,
  book: TenantBook,
  entry: JournalEntry,
  moved: MovedAccounts | undefined,
): void {
  const t = book.transfers;
  const i = t.ids.find(entry.id);
  if (i === -1 || t.status[i] !== Status.pending) fail(entry, 'not pending');
  const held = t.amountOf(i);
  let to: typeof Status.postedPending | typeof Status.voidedClient | typeof Status.voidedTimeout;
  if (entry.kind === 'post-pending') {
    if (entry.amountMinor <= 0n || entry.amountMinor > held) {
      fail(entry, 'posts more than the hold');
    }
    to = Status.postedPending;
  } else {
    const reason = voidReason(entry);
    if (reason !== 'client' && reason !== 'timeout') fail(entry, 'void without a reason');
    if (entry.amountMinor !== held) fail(entry, 'void of another amount');
    to = reason === 'client' ? Status.voidedClient : Status.voidedTimeout;
  }
  const from = book.account(t.from[i] ?? WIDE);
  const credit = book.account(t.to[i] ?? WIDE);
  settlePending(state, book, i, entry, to, from, credit);
  if (moved !== undefined) {
    moved.from = from;
    moved.to = credit;
  }
}

function replayReject(book: TenantBook, entry: JournalEntry): void {
  if (book.transfers.ids.find(entry.id) !== -1) fail(entry, 'transaction exists');
  const detail = parseDetail(entry);
  const code: unknown = detail['code'];
  if (!isErrorCode(code)) fail(entry, 'reject without a known code');
  const pending = detail['pending'];
  if (typeof pending !== 'boolean') fail(entry, 'reject without pending flag');
  const body: TransferBody = {
    fromAccountId: entry.debitAccountId,
    toAccountId: entry.creditAccountId,
    amountMinor: entry.amountMinor,
    currencyCode: entry.currencyCode,
    pending,
    ...detailsOf(entry, detail),
  };
  recordRejection(book, entry, body, code satisfies ErrorCode);
}
