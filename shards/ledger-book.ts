// The shard's in-memory books (tenants, accounts, transfers, timeouts) and the only functions
// that change them. Live decisions and journal replay both go through these effects, so a
// replay rebuilds exactly the live state. Effects never decide business rules and never do I/O.

import type { ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { EntryKind } from '../protocol/types.js';
import { IdTable } from './id-table.js';
import { TimeoutHeap, type TimeoutItem } from './timeout-heap.js';

/** Largest total any account side may reach (signed 64-bit, like the journal columns). */
export const MAX_MINOR = 2n ** 63n - 1n;

/** One journal effect on an account. A JournalEntry satisfies it, so live rows are shared. */
export interface HistoryRow {
  readonly sequence: number;
  readonly kind: EntryKind;
  readonly id: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amountMinor: bigint;
  readonly time: number;
}

/** The fields that make up a transfer's body; two requests with equal bodies are replays. */
export interface TransferBody {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amountMinor: bigint;
  readonly currencyCode: string;
  readonly description: string | null;
  readonly paymentTypeId: string | null;
  readonly pending: boolean;
  readonly timeoutSeconds: number | null;
}

export class Account {
  postedDebits = 0n;
  postedCredits = 0n;
  pendingDebits = 0n;
  pendingCredits = 0n;
  /** every effect on this account, oldest first (account-open first) */
  readonly history: HistoryRow[] = [];

  constructor(
    readonly id: string,
    readonly currencyCode: string,
    readonly allowNegative: boolean,
    /** canonical JSON of the metadata object */
    readonly metadata: string,
    readonly createdAt: number,
    readonly sequence: number,
  ) {}
}

/** Transfer lifecycle states; numeric so records stay small and snapshot compactly. */
export const Status = {
  posted: 0,
  pending: 1,
  postedPending: 2,
  voidedClient: 3,
  voidedTimeout: 4,
  rejected: 5,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

/** Legal lifecycle transitions; anything else is a bug in the caller and throws. */
const TRANSITIONS: Readonly<Record<StatusCode, readonly StatusCode[]>> = {
  [Status.posted]: [],
  [Status.pending]: [Status.postedPending, Status.voidedClient, Status.voidedTimeout],
  [Status.postedPending]: [],
  [Status.voidedClient]: [],
  [Status.voidedTimeout]: [],
  [Status.rejected]: [],
};

export function isStatusCode(value: unknown): value is StatusCode {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 5;
}

/**
 * A transfer, or a recorded rejection of one (kept so a replay gets the same answer). It is
 * also the history row of its own post/pending effect, so the hot path retains one object per
 * transfer instead of a record plus its journal entry.
 */
export class TransferRecord implements TimeoutItem, TransferBody, HistoryRow {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly amountMinor: bigint;
  readonly currencyCode: string;
  readonly description: string | null;
  readonly paymentTypeId: string | null;
  readonly pending: boolean;
  readonly timeoutSeconds: number | null;
  /** logical ms of the automatic void; null when the transfer has no timeout */
  expiresAt: number | null;
  heapIndex = -1;
  postedAmountMinor = 0n;

  constructor(
    readonly tenant: string,
    readonly id: string,
    body: TransferBody,
    public status: StatusCode,
    readonly rejectCode: ErrorCode | null,
    readonly createdAt: number,
    /** sequence of the entry that created it (its pending, post or reject entry) */
    readonly sequence: number,
  ) {
    this.fromAccountId = body.fromAccountId;
    this.toAccountId = body.toAccountId;
    this.amountMinor = body.amountMinor;
    this.currencyCode = body.currencyCode;
    this.description = body.description;
    this.paymentTypeId = body.paymentTypeId;
    this.pending = body.pending;
    this.timeoutSeconds = body.timeoutSeconds;
    this.expiresAt = expiryOf(body, createdAt, status);
  }

  get kind(): EntryKind {
    return this.pending ? 'pending' : 'post';
  }

  get debitAccountId(): string {
    return this.fromAccountId;
  }

  get creditAccountId(): string {
    return this.toAccountId;
  }

  get time(): number {
    return this.createdAt;
  }
}

function expiryOf(body: TransferBody, createdAt: number, status: StatusCode): number | null {
  if (status === Status.rejected || !body.pending || !body.timeoutSeconds) return null;
  return createdAt + body.timeoutSeconds * 1000;
}

export function sameBody(a: TransferBody, b: TransferBody): boolean {
  return (
    a.fromAccountId === b.fromAccountId &&
    a.toAccountId === b.toAccountId &&
    a.amountMinor === b.amountMinor &&
    a.currencyCode === b.currencyCode &&
    a.description === b.description &&
    a.paymentTypeId === b.paymentTypeId &&
    a.pending === b.pending &&
    a.timeoutSeconds === b.timeoutSeconds
  );
}

export class TenantBook {
  readonly accounts = new Map<string, Account>();
  /** transfers and recorded rejections, in creation (sequence) order */
  readonly transfers = new IdTable<TransferRecord>();
  /** every non-reject effect of this tenant in sequence order (snapshots encode this) */
  readonly effects: HistoryRow[] = [];

  constructor(readonly tenant: string) {}

  isEmpty(): boolean {
    return this.accounts.size === 0 && this.transfers.size === 0;
  }
}

export class ShardState {
  /** last assigned journal sequence (0 before the first entry) */
  sequence = 0;
  /** logical ms: the time of the newest entry; never decreases */
  time = 0;
  readonly tenants = new Map<string, TenantBook>();
  readonly timeouts = new TimeoutHeap<TransferRecord>();

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
    book = new TenantBook(tenant);
    state.tenants.set(tenant, book);
  }
  return book;
}

function add(total: bigint, amount: bigint, what: string): bigint {
  const sum = total + amount;
  if (sum > MAX_MINOR) throw new Error(`ledger: ${what} would overflow (bug: unchecked decision)`);
  return sum;
}

function sub(total: bigint, amount: bigint, what: string): bigint {
  const rest = total - amount;
  if (rest < 0n) throw new Error(`ledger: ${what} would go below zero (bug: unpaired release)`);
  return rest;
}

function pushEffect(book: TenantBook, row: HistoryRow, debit: Account | null, credit: Account) {
  book.effects.push(row);
  if (debit !== null) debit.history.push(row);
  credit.history.push(row);
}

export function openAccount(
  book: TenantBook,
  entry: JournalEntry,
  allowNegative: boolean,
  metadata: string,
): Account {
  const account = new Account(
    entry.creditAccountId, entry.currencyCode, allowNegative, metadata, entry.time, entry.sequence,
  );
  book.accounts.set(account.id, account);
  pushEffect(book, entry, null, account);
  return account;
}

/** post or pending entry: move the amount (posted) or hold it (pending). */
export function createTransfer(
  state: ShardState,
  book: TenantBook,
  entry: JournalEntry,
  body: TransferBody,
  from: Account,
  to: Account,
): TransferRecord {
  const amount = entry.amountMinor;
  const status = body.pending ? Status.pending : Status.posted;
  const record = new TransferRecord(
    book.tenant, entry.id, body, status, null, entry.time, entry.sequence,
  );
  if (body.pending) {
    from.pendingDebits = add(from.pendingDebits, amount, 'pendingDebits');
    to.pendingCredits = add(to.pendingCredits, amount, 'pendingCredits');
    if (record.expiresAt !== null) state.timeouts.push(record);
  } else {
    from.postedDebits = add(from.postedDebits, amount, 'postedDebits');
    to.postedCredits = add(to.postedCredits, amount, 'postedCredits');
    record.postedAmountMinor = amount;
  }
  book.transfers.add(record);
  pushEffect(book, record, from, to);
  return record;
}

export function recordRejection(
  book: TenantBook,
  entry: JournalEntry | { id: string; time: number; sequence: number },
  body: TransferBody,
  code: ErrorCode,
): TransferRecord {
  const record = new TransferRecord(
    book.tenant, entry.id, body, Status.rejected, code, entry.time, entry.sequence,
  );
  book.transfers.add(record);
  return record;
}

/** post-pending or void entry: release the whole hold, then post `entry.amountMinor` if any. */
export function settlePending(
  state: ShardState,
  book: TenantBook,
  record: TransferRecord,
  entry: JournalEntry,
  to: StatusCode,
  from: Account,
  credit: Account,
): void {
  if (!TRANSITIONS[record.status].includes(to)) {
    throw new Error(`ledger: illegal transition ${record.status} -> ${to} of ${record.id}`);
  }
  from.pendingDebits = sub(from.pendingDebits, record.amountMinor, 'pendingDebits');
  credit.pendingCredits = sub(credit.pendingCredits, record.amountMinor, 'pendingCredits');
  if (to === Status.postedPending) {
    from.postedDebits = add(from.postedDebits, entry.amountMinor, 'postedDebits');
    credit.postedCredits = add(credit.postedCredits, entry.amountMinor, 'postedCredits');
    record.postedAmountMinor = entry.amountMinor;
  }
  record.status = to;
  if (record.heapIndex !== -1) state.timeouts.remove(record);
  pushEffect(book, entry, from, credit);
}

/** Roll back a transfer or rejection created in the current atomic batch (newest first). */
export function undoTransfer(state: ShardState, book: TenantBook, record: TransferRecord): void {
  book.transfers.removeNewest(record);
  if (record.status === Status.rejected) return;
  const from = mustAccount(book, record.fromAccountId);
  const to = mustAccount(book, record.toAccountId);
  if (record.status === Status.pending) {
    from.pendingDebits = sub(from.pendingDebits, record.amountMinor, 'pendingDebits');
    to.pendingCredits = sub(to.pendingCredits, record.amountMinor, 'pendingCredits');
    if (record.heapIndex !== -1) state.timeouts.remove(record);
  } else if (record.status === Status.posted) {
    from.postedDebits = sub(from.postedDebits, record.amountMinor, 'postedDebits');
    to.postedCredits = sub(to.postedCredits, record.amountMinor, 'postedCredits');
  } else {
    throw new Error(`ledger: undo of ${record.id} in status ${record.status}`);
  }
  popEffect(book.effects, record);
  popEffect(from.history, record);
  popEffect(to.history, record);
}

function popEffect(rows: HistoryRow[], record: TransferRecord): void {
  const row = rows.pop();
  if (row === undefined || row.sequence !== record.sequence) {
    throw new Error(`ledger: undo of ${record.id} does not match the newest effect`);
  }
}

/** An account the journal or a record says exists; missing means corrupted state (a bug). */
export function mustAccount(book: TenantBook, id: string): Account {
  const account = book.accounts.get(id);
  if (account === undefined) throw new Error(`ledger: tenant ${book.tenant} lost account ${id}`);
  return account;
}
