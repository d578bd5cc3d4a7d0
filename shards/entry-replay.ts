// Journal replay: applies one persisted entry through the same effects the live path used, so
// snapshot + journal tail (or a whole journal, for audit) rebuilds the state exactly. It never
// re-decides business rules: an entry is a fact, and one that does not fit the state throws.

import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  Status,
  bookFor,
  createTransfer,
  mustAccount,
  openAccount,
  recordRejection,
  settlePending,
  type ShardState,
  type TenantBook,
  type TransferBody,
  type TransferRecord,
} from './ledger-book.js';

/** Replay one persisted entry. Asserts entry.sequence === state.sequence + 1. */
export function applyEntry(state: ShardState, entry: JournalEntry): void {
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
  switch (entry.kind) {
    case 'account-open':
      replayOpen(book, entry);
      return;
    case 'post':
    case 'pending':
      replayTransfer(state, book, entry);
      return;
    case 'post-pending':
    case 'void':
      replaySettle(state, book, entry);
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

function bodyOf(entry: JournalEntry, detail: Record<string, unknown>, pending: boolean) {
  const body: TransferBody = {
    fromAccountId: entry.debitAccountId,
    toAccountId: entry.creditAccountId,
    amountMinor: entry.amountMinor,
    currencyCode: entry.currencyCode,
    description: nullableString(entry, detail['description']),
    paymentTypeId: nullableString(entry, detail['paymentTypeId']),
    pending,
    timeoutSeconds: nullableInteger(entry, detail['timeoutSeconds']),
  };
  return body;
}

function replayTransfer(state: ShardState, book: TenantBook, entry: JournalEntry): void {
  if (book.transfers.get(entry.id) !== undefined) fail(entry, 'transaction exists');
  const body = bodyOf(entry, parseDetail(entry), entry.kind === 'pending');
  const from = mustAccount(book, body.fromAccountId);
  const to = mustAccount(book, body.toAccountId);
  createTransfer(state, book, entry, body, from, to);
}

function replaySettle(state: ShardState, book: TenantBook, entry: JournalEntry): void {
  const record: TransferRecord | undefined = book.transfers.get(entry.id);
  if (record === undefined || record.status !== Status.pending) fail(entry, 'not pending');
  let to: typeof Status.postedPending | typeof Status.voidedClient | typeof Status.voidedTimeout;
  if (entry.kind === 'post-pending') {
    if (entry.amountMinor <= 0n || entry.amountMinor > record.amountMinor) {
      fail(entry, 'posts more than the hold');
    }
    to = Status.postedPending;
  } else {
    const reason = parseDetail(entry)['reason'];
    if (reason !== 'client' && reason !== 'timeout') fail(entry, 'void without a reason');
    if (entry.amountMinor !== record.amountMinor) fail(entry, 'void of another amount');
    to = reason === 'client' ? Status.voidedClient : Status.voidedTimeout;
  }
  const from = mustAccount(book, record.fromAccountId);
  const credit = mustAccount(book, record.toAccountId);
  settlePending(state, book, record, entry, to, from, credit);
}

function replayReject(book: TenantBook, entry: JournalEntry): void {
  if (book.transfers.get(entry.id) !== undefined) fail(entry, 'transaction exists');
  const detail = parseDetail(entry);
  const code: unknown = detail['code'];
  if (!isErrorCode(code)) fail(entry, 'reject without a known code');
  const pending = detail['pending'];
  if (typeof pending !== 'boolean') fail(entry, 'reject without pending flag');
  recordRejection(book, entry, bodyOf(entry, detail, pending), code satisfies ErrorCode);
}
