// One account of a tenant book: its totals and the codes of its history. Totals are exact
// safe-integer numbers while they fit (no bigint allocation on the hot path) and bigints once
// one passes 2^53 - 1; the bigint accessors give every reader the exact value of either form.

import type { EntryKind } from '../protocol/types.js';

/** Largest total any account side may reach (signed 64-bit, like the journal columns). */
export const MAX_MINOR = 2n ** 63n - 1n;
const SAFE = Number.MAX_SAFE_INTEGER;
const SAFE_BIG = BigInt(SAFE);

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

/** What an account needs from its book to turn history codes into rows. */
export interface HistorySource {
  historyRow(account: Account, position: number): HistoryRow;
}

export class Account {
  /** false: totals live in pd/pc/hd/hc (each a safe integer >= 0); true: in the bigints */
  wide = false;
  pd = 0;
  pc = 0;
  hd = 0;
  hc = 0;
  pdBig = 0n;
  pcBig = 0n;
  hdBig = 0n;
  hcBig = 0n;
  /** history after the account-open row, oldest first: 2 * transfer index (+1 if settle) */
  codes = new Int32Array(4);
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
    readonly createdAt: number,
    readonly sequence: number,
  ) {}

  get postedDebits(): bigint {
    return this.wide ? this.pdBig : BigInt(this.pd);
  }

  set postedDebits(value: bigint) {
    if (this.fits(value)) this.pd = Number(value);
    else this.pdBig = value;
  }

  get postedCredits(): bigint {
    return this.wide ? this.pcBig : BigInt(this.pc);
  }

  set postedCredits(value: bigint) {
    if (this.fits(value)) this.pc = Number(value);
    else this.pcBig = value;
  }

  get pendingDebits(): bigint {
    return this.wide ? this.hdBig : BigInt(this.hd);
  }

  set pendingDebits(value: bigint) {
    if (this.fits(value)) this.hd = Number(value);
    else this.hdBig = value;
  }

  get pendingCredits(): bigint {
    return this.wide ? this.hcBig : BigInt(this.hc);
  }

  set pendingCredits(value: bigint) {
    if (this.fits(value)) this.hc = Number(value);
    else this.hcBig = value;
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

  pushCode(code: number): void {
    if (this.codeCount === this.codes.length) {
      const next = new Int32Array(this.codes.length * 2);
      next.set(this.codes);
      this.codes = next;
    }
    this.codes[this.codeCount++] = code;
  }

  popCode(code: number): void {
    if (this.codeCount === 0 || this.codes[this.codeCount - 1] !== code) {
      throw new Error(`ledger: undo on ${this.id} does not match its newest effect`);
    }
    this.codeCount--;
  }

  /** Whether `value` may stay in number form; switches the account to bigints if not. */
  private fits(value: bigint): boolean {
    if (!this.wide && value >= 0n && value <= SAFE_BIG) return true;
    this.widen();
    return false;
  }

  private widen(): void {
    if (this.wide) return;
    this.pdBig = BigInt(this.pd);
    this.pcBig = BigInt(this.pc);
    this.hdBig = BigInt(this.hd);
    this.hcBig = BigInt(this.hc);
    this.wide = true;
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
    const debit = (pending ? from.hd : from.pd) + n;
    const credit = (pending ? to.hc : to.pc) + n;
    if (debit <= SAFE && credit <= SAFE) {
      if (pending) {
        from.hd = debit;
        to.hc = credit;
      } else {
        from.pd = debit;
        to.pc = credit;
      }
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
    const debit = (pending ? from.hd : from.pd) - n;
    const credit = (pending ? to.hc : to.pc) - n;
    if (debit >= 0 && credit >= 0) {
      if (pending) {
        from.hd = debit;
        to.hc = credit;
      } else {
        from.pd = debit;
        to.pc = credit;
      }
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
  return !from.allowNegative && from.pc - from.pd - from.hd < n;
}
