// Column storage of one tenant's transfers and recorded rejections, indexed by creation order:
// the hot path retains no object per transfer (one record each made GC most of the CPU).
// Pure data: never decides business rules; only the effects in ledger-book.ts change it.

import type { ErrorCode } from '../protocol/errors.js';
import { StringIndex } from './id-table.js';

/** Transfer lifecycle states; numeric so they fit a Uint8Array column. */
export const Status = {
  posted: 0,
  pending: 1,
  postedPending: 2,
  voidedClient: 3,
  voidedTimeout: 4,
  rejected: 5,
} as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

export function isStatusCode(value: unknown): value is StatusCode {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 5;
}

/** Marks an amount column slot whose value lives in the wide map (or an unknown account). */
export const WIDE = -1;
const SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** The amount as an exact number when it is a safe non-negative integer, else WIDE. */
export function narrow(amount: bigint): number {
  return amount >= 0n && amount <= SAFE_BIG ? Number(amount) : WIDE;
}

/**
 * Everything a plain transfer does not have, kept off the columns: a transfer gets one when
 * it has a description, payment type or timeout, is a rejection, or names a currency other
 * than its debit account's. Rejections keep their whole body here (their accounts may not
 * exist, so the account columns hold WIDE for them).
 */
export interface TransferExtra {
  readonly fromAccountId: string;
  readonly toAccountId: string;
  readonly currencyCode: string;
  readonly description: string | null;
  readonly paymentTypeId: string | null;
  readonly pending: boolean;
  readonly timeoutSeconds: number | null;
  readonly rejectCode: ErrorCode | null;
}

const MIN_CAPACITY = 8;
/** Effect codes are 2 * index (+1), kept in Int32Arrays: this bounds a book's transfers. */
export const TRANSFERS_MAX = 2 ** 30 - 1;

export class TransferColumns {
  /** ids by index; `ids.find(id)` is the index of a transfer */
  readonly ids = new StringIndex();
  /** debit / credit account indexes in the book (WIDE for rejections) */
  from = new Int32Array(MIN_CAPACITY);
  to = new Int32Array(MIN_CAPACITY);
  /** amount requested, exact (WIDE: see wideAmounts) */
  amount = new Float64Array(MIN_CAPACITY);
  /** amount that moved: the amount when posted, the posted part of a posted hold, else 0 */
  posted = new Float64Array(MIN_CAPACITY);
  status = new Uint8Array(MIN_CAPACITY);
  /** logical ms and journal sequence of the creating entry */
  time = new Float64Array(MIN_CAPACITY);
  sequence = new Float64Array(MIN_CAPACITY);
  /** sequence and time of the post-pending or void entry that settled a hold, else 0 */
  settleSequence = new Float64Array(MIN_CAPACITY);
  settleTime = new Float64Array(MIN_CAPACITY);
  readonly extras = new Map<number, TransferExtra>();
  /** amounts (and posted amounts) that do not fit a safe non-negative integer */
  readonly wideAmounts = new Map<number, bigint>();
  readonly widePosted = new Map<number, bigint>();

  get count(): number {
    return this.ids.size;
  }

  /** Appends a transfer whose id is not taken; returns its index. posted starts at 0. */
  add(id: string, from: number, to: number, amount: bigint, status: StatusCode, time: number,
    sequence: number): number {
    const i = this.ids.size;
    if (i >= TRANSFERS_MAX) throw new Error('ledger: a tenant book is full (2^30 transfers)');
    if (i === this.status.length) this.grow();
    this.ids.add(id);
    this.from[i] = from;
    this.to[i] = to;
    const n = narrow(amount);
    this.amount[i] = n;
    if (n === WIDE) this.wideAmounts.set(i, amount);
    this.posted[i] = 0;
    this.status[i] = status;
    this.time[i] = time;
    this.sequence[i] = sequence;
    this.settleSequence[i] = 0;
    this.settleTime[i] = 0;
    return i;
  }

  /** Forgets the newest transfer (rollback of an atomic batch). */
  removeLast(): void {
    const i = this.ids.size - 1;
    this.ids.removeLast();
    this.extras.delete(i);
    this.wideAmounts.delete(i);
    this.widePosted.delete(i);
  }

  amountOf(i: number): bigint {
    const n = this.amount[i] ?? WIDE;
    return n !== WIDE ? BigInt(n) : this.wide(this.wideAmounts, i);
  }

  postedOf(i: number): bigint {
    const n = this.posted[i] ?? WIDE;
    return n !== WIDE ? BigInt(n) : this.wide(this.widePosted, i);
  }

  setPosted(i: number, amount: bigint): void {
    const n = narrow(amount);
    this.posted[i] = n;
    if (n === WIDE) this.widePosted.set(i, amount);
  }

  statusOf(i: number): StatusCode {
    return (this.status[i] ?? Status.rejected) as StatusCode;
  }

  /** Whether the transfer was asked for as a hold (rejections remember what was asked). */
  isPending(i: number): boolean {
    const status = this.status[i];
    if (status === Status.rejected) return this.extras.get(i)?.pending ?? false;
    return status !== Status.posted;
  }

  private wide(map: Map<number, bigint>, i: number): bigint {
    const value = map.get(i);
    if (value === undefined) throw new Error(`ledger: transfer ${i} lost its wide amount`);
    return value;
  }

  private grow(): void {
    const capacity = this.status.length * 2;
    const more = <A extends Int32Array | Float64Array | Uint8Array>(old: A, next: A): A => {
      next.set(old);
      return next;
    };
    this.from = more(this.from, new Int32Array(capacity));
    this.to = more(this.to, new Int32Array(capacity));
    this.amount = more(this.amount, new Float64Array(capacity));
    this.posted = more(this.posted, new Float64Array(capacity));
    this.status = more(this.status, new Uint8Array(capacity));
    this.time = more(this.time, new Float64Array(capacity));
    this.sequence = more(this.sequence, new Float64Array(capacity));
    this.settleSequence = more(this.settleSequence, new Float64Array(capacity));
    this.settleTime = more(this.settleTime, new Float64Array(capacity));
  }
}
