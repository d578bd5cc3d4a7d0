// The shard's in-memory books (tenants, accounts, transfer columns, timeouts) and the only
// functions that change them. Live decisions and journal replay both go through these effects,
// so a replay rebuilds exactly the live state. Effects never decide business rules, never I/O.

import type { ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  Account, TotalsBlocks, addPair, subPair, type HistoryRow, type HistorySource,
} from './account.js';
import { HistoryBlocks } from './history-blocks.js';
import { IdTable } from './id-table.js';
import { TimeoutHeap, type TimeoutItem } from './timeout-heap.js';
import {
  Status,
  TransferColumns,
  WIDE,
  narrow,
  type StatusCode,
} from './transfer-columns.js';

export { Account, MAX_MINOR, type HistoryRow } from './account.js';
export { Status, isStatusCode, type StatusCode, type TransferExtra } from './transfer-columns.js';

/**
 * The journal detail of a transfer without description, payment type or timeout: empty, so the
 * common record is 64 bytes shorter (one SHA-256 block less to hash, a quarter less to write).
 * Journals written before carry `{"description":null,"paymentTypeId":null,"timeoutSeconds":null}`
 * instead, which replays to the same state.
 */
export const NO_TRANSFER_DETAIL = '';
export const VOID_CLIENT_DETAIL = '{"reason":"client"}';
export const VOID_TIMEOUT_DETAIL = '{"reason":"timeout"}';

/** The optional fields of a transfer's body. */
export interface TransferDetails {
  readonly description: string | null;
  readonly paymentTypeId: string | null;
  readonly timeoutSeconds: number | null;
}

export const NO_DETAILS: TransferDetails = Object.freeze({
  description: null, paymentTypeId: null, timeoutSeconds: null,
});

/** The fields that make up a transfer's body; two requests with equal bodies are replays. */
export interface TransferBody extends TransferDetails {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amountMinor: bigint;
  readonly currencyCode: string;
  readonly pending: boolean;
}

/** Legal lifecycle transitions; anything else is a bug in the caller and throws. */
const TRANSITIONS: Readonly<Record<StatusCode, readonly StatusCode[]>> = {
  [Status.posted]: [],
  [Status.pending]: [Status.postedPending, Status.voidedClient, Status.voidedTimeout],
  [Status.postedPending]: [],
  [Status.voidedClient]: [],
  [Status.voidedTimeout]: [],
  [Status.rejected]: [],
};

/** A pending transfer with a timeout, queued for its automatic void. */
export class Hold implements TimeoutItem {
  heapIndex = -1;
  constructor(
    readonly book: TenantBook,
    /** the transfer's index in its book */
    readonly index: number,
    readonly id: string,
    public expiresAt: number | null,
  ) {}

  get tenant(): string {
    return this.book.tenant;
  }
}

export class TenantBook implements HistorySource {
  /** accounts by id; `list` is by index, in creation order */
  readonly accounts = new IdTable<Account>();
  /** accounts by index, in creation order */
  readonly accountList: Account[] = this.accounts.list;
  /** where the accounts keep their narrow totals */
  readonly totals = new TotalsBlocks();
  /** transfers and recorded rejections, in creation (sequence) order */
  readonly transfers = new TransferColumns();
  /** pending transfers with a timeout, by transfer index, until settled */
  readonly holds = new Map<number, Hold>();

  constructor(
    readonly tenant: string,
    /** where the accounts' histories grow: the shard's (default: the book's own) */
    readonly history = new HistoryBlocks(),
  ) {}

  isEmpty(): boolean {
    return this.accounts.size === 0 && this.transfers.count === 0;
  }

  account(index: number): Account {
    const account = this.accountList[index];
    if (account === undefined) throw new Error(`ledger: tenant ${this.tenant} has no #${index}`);
    return account;
  }

  /** Row `position` of an account's history (0: its account-open). */
  historyRow(account: Account, position: number): HistoryRow {
    if (position === 0) {
      return { sequence: account.sequence, kind: 'account-open', id: account.id,
        debitAccountId: '', creditAccountId: account.id, amountMinor: 0n,
        time: account.createdAt };
    }
    if (!(position > 0 && position <= account.codeCount)) {
      throw new Error(`ledger: ${account.id} has no history row ${position}`);
    }
    return this.effectRow(account.codeAt(position - 1));
  }

  /** The effect `code` (2 * transfer index, +1 for its settlement) as a history row. */
  effectRow(code: number): HistoryRow {
    const t = this.transfers;
    const i = code >> 1;
    const debitAccountId = this.account(t.from[i] ?? WIDE).id;
    const creditAccountId = this.account(t.to[i] ?? WIDE).id;
    const id = t.ids.keyAt(i);
    if ((code & 1) === 0) {
      return { sequence: t.sequence[i] ?? 0, kind: t.isPending(i) ? 'pending' : 'post', id,
        debitAccountId, creditAccountId, amountMinor: t.amountOf(i), time: t.time[i] ?? 0 };
    }
    const posted = t.status[i] === Status.postedPending;
    return { sequence: t.settleSequence[i] ?? 0, kind: posted ? 'post-pending' : 'void', id,
      debitAccountId, creditAccountId, amountMinor: posted ? t.postedOf(i) : t.amountOf(i),
      time: t.settleTime[i] ?? 0 };
  }
}

export class ShardState {
  /** last assigned journal sequence (0 before the first entry) */
  sequence = 0;
  /** logical ms: the time of the newest entry; never decreases */
  time = 0;
  readonly tenants = new Map<string, TenantBook>();
  readonly timeouts = new TimeoutHeap<Hold>();
  /** where its accounts' histories grow, shared by its books (see history-blocks.ts) */
  readonly history = new HistoryBlocks();

  constructor(
    readonly shard: number,
    public epoch: number,
  ) {}
}

export function createShardState(shard: number, epoch: number): ShardState {
  return new ShardState(shard, epoch);
}

export function bookFor(state: ShardState, tenant: string): TenantBook {
  let book = state.tenants.get(tenant);
  if (book === undefined) {
    book = new TenantBook(tenant, state.history);
    state.tenants.set(tenant, book);
  }
  return book;
}

export function openAccount(
  book: TenantBook,
  entry: JournalEntry,
  allowNegative: boolean,
  metadata: string,
): Account {
  const account = new Account(book, book.accountList.length, entry.creditAccountId,
    entry.currencyCode, allowNegative, metadata, entry.time, entry.sequence, book.totals);
  book.accounts.add(account);
  return account;
}

/**
 * post or pending entry: move the amount (posted) or hold it (pending). `details` are the
 * body's optional fields; the entry gives id, amount, currency, time and sequence.
 */
export function createTransfer(
  state: ShardState,
  book: TenantBook,
  entry: JournalEntry,
  pending: boolean,
  details: TransferDetails,
  from: Account,
  to: Account,
): number {
  const amount = entry.amountMinor;
  const t = book.transfers;
  const i = t.add(entry.id, from.index, to.index, amount,
    pending ? Status.pending : Status.posted, entry.time, entry.sequence);
  if (details.description !== null || details.paymentTypeId !== null ||
    details.timeoutSeconds !== null || entry.currencyCode !== from.currencyCode) {
    t.extras.set(i, { fromAccountId: from.id, toAccountId: to.id, pending,
      currencyCode: entry.currencyCode, description: details.description,
      paymentTypeId: details.paymentTypeId, timeoutSeconds: details.timeoutSeconds,
      rejectCode: null });
  }
  const n = t.amount[i] ?? WIDE;
  addPair(from, to, pending, amount, n);
  if (pending) {
    if (details.timeoutSeconds) {
      const hold = new Hold(book, i, entry.id, entry.time + details.timeoutSeconds * 1000);
      book.holds.set(i, hold);
      state.timeouts.push(hold);
    }
  } else {
    t.posted[i] = n;
    if (n === WIDE) t.widePosted.set(i, amount);
  }
  const code = 2 * i;
  from.pushCode(code);
  to.pushCode(code);
  return i;
}

export function recordRejection(
  book: TenantBook,
  entry: { id: string; time: number; sequence: number },
  body: TransferBody,
  code: ErrorCode,
): number {
  const t = book.transfers;
  const i = t.add(entry.id, WIDE, WIDE, body.amountMinor, Status.rejected, entry.time,
    entry.sequence);
  const { fromAccountId, toAccountId, currencyCode, description, paymentTypeId, pending,
    timeoutSeconds } = body;
  t.extras.set(i, { fromAccountId, toAccountId, currencyCode, description, paymentTypeId,
    pending, timeoutSeconds, rejectCode: code });
  return i;
}

/** post-pending or void entry: release the whole hold, then post `entry.amountMinor` if any. */
export function settlePending(
  state: ShardState,
  book: TenantBook,
  i: number,
  entry: JournalEntry,
  to: StatusCode,
  from: Account,
  credit: Account,
): void {
  const t = book.transfers;
  const status = t.statusOf(i);
  if (!TRANSITIONS[status].includes(to)) {
    throw new Error(`ledger: illegal transition ${status} -> ${to} of ${t.ids.keyAt(i)}`);
  }
  subPair(from, credit, true, t.amountOf(i), t.amount[i] ?? WIDE);
  if (to === Status.postedPending) {
    addPair(from, credit, false, entry.amountMinor, narrow(entry.amountMinor));
    t.setPosted(i, entry.amountMinor);
  }
  t.status[i] = to;
  t.settleSequence[i] = entry.sequence;
  t.settleTime[i] = entry.time;
  dropHold(state, book, i);
  const code = 2 * i + 1;
  from.pushCode(code);
  credit.pushCode(code);
}

function dropHold(state: ShardState, book: TenantBook, i: number): void {
  const hold = book.holds.get(i);
  if (hold === undefined) return;
  book.holds.delete(i);
  if (hold.heapIndex !== -1) state.timeouts.remove(hold);
}

/** Roll back the newest transfer or rejection, created in the current atomic batch. */
export function undoTransfer(state: ShardState, book: TenantBook, i: number): void {
  const t = book.transfers;
  if (i !== t.count - 1) throw new Error(`ledger: undo of ${t.ids.keyAt(i)}, not the newest`);
  const status = t.statusOf(i);
  if (status !== Status.rejected) {
    if (status !== Status.pending && status !== Status.posted) {
      throw new Error(`ledger: undo of ${t.ids.keyAt(i)} in status ${status}`);
    }
    const from = book.account(t.from[i] ?? WIDE);
    const to = book.account(t.to[i] ?? WIDE);
    subPair(from, to, status === Status.pending, t.amountOf(i), t.amount[i] ?? WIDE);
    dropHold(state, book, i);
    to.popCode(2 * i);
    from.popCode(2 * i);
  }
  t.removeLast();
}

/** Whether `body` equals the body of transfer `i` (same id again: a replay, not a conflict). */
export function sameBody(book: TenantBook, i: number, body: TransferBody): boolean {
  const t = book.transfers;
  const extra = t.extras.get(i);
  if (extra !== undefined) {
    return extra.fromAccountId === body.fromAccountId && extra.toAccountId === body.toAccountId &&
      extra.currencyCode === body.currencyCode && extra.description === body.description &&
      extra.paymentTypeId === body.paymentTypeId && extra.pending === body.pending &&
      extra.timeoutSeconds === body.timeoutSeconds && t.amountOf(i) === body.amountMinor;
  }
  const from = book.account(t.from[i] ?? WIDE);
  const n = t.amount[i] ?? WIDE;
  return from.id === body.fromAccountId && book.account(t.to[i] ?? WIDE).id === body.toAccountId &&
    from.currencyCode === body.currencyCode && body.description === null &&
    body.paymentTypeId === null && body.timeoutSeconds === null &&
    t.isPending(i) === body.pending &&
    (n !== WIDE ? narrow(body.amountMinor) === n : t.amountOf(i) === body.amountMinor);
}

/** An account the journal or a record says exists; missing means corrupted state (a bug). */
export function mustAccount(book: TenantBook, id: string): Account {
  const account = book.accounts.get(id);
  if (account === undefined) throw new Error(`ledger: tenant ${book.tenant} lost account ${id}`);
  return account;
}
