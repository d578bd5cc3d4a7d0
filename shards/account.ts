// One account of a tenant book: its totals and the codes of its history. Totals are exact
// safe-integer numbers while they fit (no bigint allocation on the hot path) and bigints once
// one passes 2^53 - 1; the bigint accessors give every reader the exact value of either form.

import type { EntryKind } from '../protocol/types.js';
import { POOLED_MAX_ROOM, offsetOf, type HistoryBlocks } from './history-blocks.js';

/** Largest total any account side may reach (signed 64-bit, like the journal columns). */
export const MAX_MINOR = 2n ** 63n - 1n;
const SAFE = Number.MAX_SAFE_INTEGER;
const SAFE_BIG = BigInt(SAFE);
/** The history of an account with none yet: never written (its room is 0). */
const NO_CODES = new Int32Array(0);
/** Accounts a totals block holds at least and (unless reserved for more) at most. */
const BLOCK_ACCOUNTS_MIN = 8;
const BLOCK_ACCOUNTS_MAX = 1024;
/** Offsets of an account's totals (and its creation time) in its block. */
const PD = 0;
const PC = 1;
const HD = 2;
const HC = 3;
const CREATED = 4;
/** Numbers per account in a block. */
const STRIDE = 5;

/**
 * Where a book's accounts keep their narrow totals: four numbers each (pd, pc, hd, hc), and
 * their creation time, in typed-array blocks that consecutive accounts share. Only safe
 * integers (minor units, exact, the values the number fields held; times in ms) are ever
 * stored; a total past 2^53 - 1 moves the account to bigints (WideTotals), never to a
 * rounded double. As number fields they were five boxed doubles per account (V8 boxes every
 * double field) that a recovery of a million accounts had to allocate and the garbage
 * collector to copy and mark.
 */
export class TotalsBlocks {
  private block = new Float64Array(0);
  private used = 0;

  /** The block that take() placed the newest account in. */
  get current(): Float64Array {
    return this.block;
  }

  /** Room for `n` more accounts in the current block (a recovered book: all of them). */
  reserve(n: number): void {
    if (this.used + STRIDE * n <= this.block.length) return;
    const doubled = Math.min(BLOCK_ACCOUNTS_MAX, 2 * (this.block.length / STRIDE));
    this.block = new Float64Array(STRIDE * Math.max(n, BLOCK_ACCOUNTS_MIN, doubled));
    this.used = 0;
  }

  /** The offset of one more account's totals (all 0) in `current`. */
  take(): number {
    this.reserve(1);
    const slot = this.used;
    this.used += STRIDE;
    return slot;
  }
}

/** One journal effect on an account. */
export interface HistoryRow {
  readonly sequence: number;
  readonly kind: EntryKind;
  readonly id: string;
  readonly debitAccountId: string;
  readonly creditAccountId: string;
  readonly amountMinor: bigint;
  readonly time: number;
}

/** What an account needs from its book: rows for its history codes, room for more codes. */
export interface HistorySource {
  historyRow(account: Account, position: number): HistoryRow;
  /** the shard's blocks a history moves to when it grows */
  readonly history: HistoryBlocks;
}

/** The exact totals of an account once one of them passed 2^53 - 1. */
class WideTotals {
  constructor(public pd: bigint, public pc: bigint, public hd: bigint, public hc: bigint) {}
}

export class Account {
  /** false: the totals are pd/pc/hd/hc (each a safe integer >= 0); true: in `big` */
  wide = false;
  private big: WideTotals | null = null;
  /**
   * The narrow totals are totals[slot + PD...HC] (see TotalsBlocks). The hot path (addPair,
   * subPair, narrowShortOfFunds) reads and writes them there directly: through the pd...hc
   * accessors, which box each number when TurboFan does not inline them, the state machine
   * bench ran 10-15% slower with more time in GC.
   */
  readonly totals: Float64Array;
  readonly slot: number;
  /**
   * History after the account-open row, oldest first: 2 * transfer index (+1 if settle), in
   * codes[codeStart, codeStart + codeCount) with room up to codeStart + codeRoom. None at
   * first, or a slice of a column its book shares (a recovered book); once it grows, a range
   * of the shard's history blocks, or an array of its own when long: a million accounts make
   * no million small arrays (see history-blocks.ts).
   */
  private codes: Int32Array = NO_CODES;
  private codeStart = 0;
  private codeRoom = 0;
  codeCount = 0;

  constructor(
    readonly book: HistorySource,
    /** position in the book's account list; transfer columns refer to accounts by it */
    readonly index: number,
    readonly id: string,
    readonly currencyCode: string,
    readonly allowNegative: boolean,
    /** canonical JSON of the metadata object */
    readonly metadata: string,
    createdAt: number,
    readonly sequence: number,
    totals: TotalsBlocks,
  ) {
    this.slot = totals.take();
    this.totals = totals.current;
    this.totals[this.slot + CREATED] = createdAt;
  }

  /**
   * Logical time of the account's opening. Kept in the totals block: as a field, a time in
   * milliseconds (past the small-integer range) was one more boxed number per account.
   */
  get createdAt(): number {
    return this.totals[this.slot + CREATED] as number;
  }

  get pd(): number {
    return this.totals[this.slot + PD] as number;
  }

  set pd(value: number) {
    this.totals[this.slot + PD] = value;
  }

  get pc(): number {
    return this.totals[this.slot + PC] as number;
  }

  set pc(value: number) {
    this.totals[this.slot + PC] = value;
  }

  get hd(): number {
    return this.totals[this.slot + HD] as number;
  }

  set hd(value: number) {
    this.totals[this.slot + HD] = value;
  }

  get hc(): number {
    return this.totals[this.slot + HC] as number;
  }

  set hc(value: number) {
    this.totals[this.slot + HC] = value;
  }

  /** Sets all four narrow totals at once (a recovered account). */
  setNarrow(pd: number, pc: number, hd: number, hc: number): void {
    const t = this.totals;
    const s = this.slot;
    t[s + PD] = pd;
    t[s + PC] = pc;
    t[s + HD] = hd;
    t[s + HC] = hc;
  }

  get postedDebits(): bigint {
    return this.big === null ? BigInt(this.pd) : this.big.pd;
  }

  set postedDebits(value: bigint) {
    if (this.fits(value)) this.pd = Number(value);
    else this.widened().pd = value;
  }

  get postedCredits(): bigint {
    return this.big === null ? BigInt(this.pc) : this.big.pc;
  }

  set postedCredits(value: bigint) {
    if (this.fits(value)) this.pc = Number(value);
    else this.widened().pc = value;
  }

  get pendingDebits(): bigint {
    return this.big === null ? BigInt(this.hd) : this.big.hd;
  }

  set pendingDebits(value: bigint) {
    if (this.fits(value)) this.hd = Number(value);
    else this.widened().hd = value;
  }

  get pendingCredits(): bigint {
    return this.big === null ? BigInt(this.hc) : this.big.hc;
  }

  set pendingCredits(value: bigint) {
    if (this.fits(value)) this.hc = Number(value);
    else this.widened().hc = value;
  }

  /** Rows of the history, account-open first; `history` builds them all (O(n), for reads). */
  get historyLength(): number {
    return this.codeCount + 1;
  }

  get history(): HistoryRow[] {
    const rows: HistoryRow[] = [];
    for (let i = 0; i < this.historyLength; i++) rows.push(this.book.historyRow(this, i));
    return rows;
  }

  /** History code `k` (0: the oldest effect, after the account-open row). */
  codeAt(k: number): number {
    if (!(k >= 0 && k < this.codeCount)) throw new Error(`ledger: ${this.id} has no code ${k}`);
    return this.codes[this.codeStart + k] as number;
  }

  pushCode(code: number): void {
    if (this.codeCount === this.codeRoom) this.growCodes();
    this.codes[this.codeStart + this.codeCount++] = code;
  }

  popCode(code: number): void {
    if (this.codeCount === 0 || this.codes[this.codeStart + this.codeCount - 1] !== code) {
      throw new Error(`ledger: undo on ${this.id} does not match its newest effect`);
    }
    this.codeCount--;
  }

  /**
   * Takes `count` codes at codes[start...] as the whole history, with room for `room`
   * (>= count): the slice is the account's until it outgrows it, so no two may overlap.
   */
  adoptCodes(codes: Int32Array, start: number, count: number, room: number): void {
    if (!(count >= 0 && count <= room && start >= 0 && start + room <= codes.length)) {
      throw new Error(`ledger: ${this.id} history slice out of range`);
    }
    this.codes = codes;
    this.codeStart = start;
    this.codeCount = count;
    this.codeRoom = room;
  }

  /**
   * Doubles the room (at least 4, as live growth always gave): a range of the shard's blocks,
   * or an array of its own past POOLED_MAX_ROOM or once the shard has made all its blocks.
   */
  private growCodes(): void {
    const room = Math.max(4, this.codeRoom * 2);
    const blocks = this.book.history;
    const pos = room <= POOLED_MAX_ROOM ? blocks.take(room) : -1;
    const next = pos >= 0 ? blocks.block(pos) : new Int32Array(room);
    const at = pos >= 0 ? offsetOf(pos) : 0;
    const start = this.codeStart;
    next.set(this.codes.subarray(start, start + this.codeCount), at);
    blocks.give(this.codes, start, this.codeRoom); // if it was a range of them
    this.codes = next;
    this.codeStart = at;
    this.codeRoom = room;
  }

  /** Whether `value` may stay in number form (the account is narrow and it is safe). */
  private fits(value: bigint): boolean {
    return !this.wide && value >= 0n && value <= SAFE_BIG;
  }

  /** The bigint totals; the first call switches the account to them for good. */
  private widened(): WideTotals {
    if (this.big === null) {
      this.big = new WideTotals(BigInt(this.pd), BigInt(this.pc), BigInt(this.hd),
        BigInt(this.hc));
      this.wide = true;
    }
    return this.big;
  }
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

/**
 * Adds `amount` to from's debits and to's credits, posted or pending. `n` is the amount as a
 * number (narrow) or -1: with both accounts narrow, sums of safe integers are exact until they
 * pass 2^53 - 1, which is checked; anything else takes the bigint path.
 */
export function addPair(from: Account, to: Account, pending: boolean, amount: bigint,
  n: number): void {
  if (n >= 0 && !from.wide && !to.wide) {
    const debits = from.totals;
    const credits = to.totals;
    const d = from.slot + (pending ? HD : PD);
    const c = to.slot + (pending ? HC : PC);
    const debit = (debits[d] as number) + n;
    const credit = (credits[c] as number) + n;
    if (debit <= SAFE && credit <= SAFE) {
      debits[d] = debit;
      credits[c] = credit;
      return;
    }
  }
  if (pending) {
    from.pendingDebits = add(from.pendingDebits, amount, 'pendingDebits');
    to.pendingCredits = add(to.pendingCredits, amount, 'pendingCredits');
  } else {
    from.postedDebits = add(from.postedDebits, amount, 'postedDebits');
    to.postedCredits = add(to.postedCredits, amount, 'postedCredits');
  }
}

/** The inverse of addPair; throws if a total would go below zero (an unpaired release). */
export function subPair(from: Account, to: Account, pending: boolean, amount: bigint,
  n: number): void {
  if (n >= 0 && !from.wide && !to.wide) {
    const debits = from.totals;
    const credits = to.totals;
    const d = from.slot + (pending ? HD : PD);
    const c = to.slot + (pending ? HC : PC);
    const debit = (debits[d] as number) - n;
    const credit = (credits[c] as number) - n;
    if (debit >= 0 && credit >= 0) {
      debits[d] = debit;
      credits[c] = credit;
      return;
    }
  }
  if (pending) {
    from.pendingDebits = sub(from.pendingDebits, amount, 'pendingDebits');
    to.pendingCredits = sub(to.pendingCredits, amount, 'pendingCredits');
  } else {
    from.postedDebits = sub(from.postedDebits, amount, 'postedDebits');
    to.postedCredits = sub(to.postedCredits, amount, 'postedCredits');
  }
}

/**
 * Whether `from` can pay `n` (narrow) without going below zero counting its holds, for two
 * narrow accounts. Exact: pc - pd is exact (both in [0, 2^53)); subtracting hd is exact unless
 * the true result is below -2^53, and then both it and its rounding are below 0 < n.
 * Overflow needs no check here: posted + pending + amount < 3 * 2^53 < 2^63.
 */
export function narrowShortOfFunds(from: Account, n: number): boolean {
  const t = from.totals;
  const s = from.slot;
  return !from.allowNegative && (t[s + PC] as number) - (t[s + PD] as number) -
    (t[s + HD] as number) < n;
}
