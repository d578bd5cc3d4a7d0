// Resumable snapshot encoder: writes the shard exactly as it stood at the sequence it was
// started at, in steps the caller interleaves with new batches. Never changes the state, never
// reads the clock or does I/O (the caller decides when to yield); bytes as snapshot-codec.ts.

import { createHash } from 'node:crypto';
import type { Account, ShardState, TenantBook } from './ledger-book.js';
import { ByteArena, ByteSink } from './snapshot-bytes.js';
import {
  ByteColumn, DictColumn, ItemList, RisingColumn, SinkList, StringColumn, ValueColumn,
} from './snapshot-columns.js';
import { Status, WIDE, type TransferColumns } from './transfer-columns.js';

/*
 * Why this is consistent without copying the shard or hooking the state machine. Between
 * batches, the shard changes only in these ways, and each can be seen through at sequence S:
 *   - books, accounts and transfers are appended with sequences > S: a book's accounts and
 *     transfers are in strictly increasing sequence order, so "as at S" is a prefix of each,
 *     found by binary search (a book created after S is empty at S and left out);
 *   - a hold created at or before S is settled (post-pending, void) by an entry > S: its
 *     settleSequence then is > S, and at S it was pending, posted 0, settle sequence/time 0,
 *     with no wide posted amount (ledger-book.ts settlePending is the only such change);
 *   - account totals move by each effect > S: those effects are the newest codes of the
 *     account's history (pushed in sequence order), so walking them back from the newest
 *     undoes exactly what happened after S;
 *   - an atomic batch's rollback only removes what that same batch created (> S).
 * Column arrays may be replaced when they grow, so every step re-reads them from the book.
 * The transfer columns hold ids, amounts and accounts by value, so a step reads the live
 * columns of the prefix directly.
 */

/** Work items between calls to shouldYield: well under a millisecond each. */
const STEP = 256;
/** Transfers whose status is read between calls to shouldYield (a few typed-array reads). */
const SCAN_STEP = 4096;
/** Bytes copied or hashed between calls to shouldYield when assembling the result. */
const COPY_STEP = 256 * 1024;
const OUTPUT_MIN_BYTES = 64 * 1024;
const SAFE = Number.MAX_SAFE_INTEGER;
export const SNAPSHOT_MAGIC = new Uint8Array([0x4c, 0x53, 0x53, 0x33]); // "LSS3"
export const DIGEST_BYTES = 32;

type Step = Generator<void, void, void>;

export interface SnapshotWriterOptions {
  /** memory for the parts, reused between snapshots (default: a fresh one) */
  arena?: ByteArena;
  /** the expected size in bytes (the shard's last snapshot): the output is made that big */
  sizeHint?: number;
  /** the books' unchanging columns as the last snapshots wrote them (default: none kept) */
  columns?: WeakMap<TenantBook, BookColumns>;
  /**
   * memory to write the snapshot into, used if it holds sizeHint bytes: an earlier snapshot's
   * (see memory()) once nothing reads that one any more (default: new memory)
   */
  output?: Buffer;
}

/**
 * What never changes in a book, as written by earlier snapshots: the accounts' and transfers'
 * ids, currencies, metadata, creation times and sequences, amounts and account indexes, wide
 * amounts and extras. Accounts and transfers are only appended (see above), so a snapshot
 * adds what is new since the last one and takes the rest by reference; only balances, status
 * and settlements are written whole each time. A writer that stops half-way leaves it invalid.
 */
export class BookColumns {
  valid = true;
  accounts = 0;
  readonly accountIds = new StringColumn();
  readonly currency = new DictColumn();
  readonly metadata = new DictColumn();
  readonly allowNegative = new ByteColumn();
  readonly createdAt = new RisingColumn('account createdAt');
  readonly accountSequence = new RisingColumn('account sequence');
  transfers = 0;
  readonly transferIds = new StringColumn();
  readonly amount = new ValueColumn();
  readonly time = new RisingColumn('transfer time');
  readonly sequence = new RisingColumn('transfer sequence');
  readonly from = new ValueColumn();
  readonly to = new ValueColumn();
  readonly wideAmounts = new ItemList();
  readonly extras = new ItemList();
}

/** One tenant as at the sequence: how many of its accounts and transfers existed then. */
interface BookAt {
  book: TenantBook;
  accounts: number;
  transfers: number;
}

export class SnapshotWriter {
  readonly shard: number;
  readonly epoch: number;
  /** the journal sequence this snapshot is exactly the state at */
  readonly sequence: number;
  private readonly time: number;
  private readonly arena: ByteArena;
  private readonly columns: WeakMap<TenantBook, BookColumns> | null;
  private readonly work: Step;
  private readonly reuse: Buffer | undefined;
  /** the snapshot so far: each tenant is copied here once written (and hashed) */
  private output: Buffer = Buffer.alloc(0);
  private length = 0;
  private readonly hash = createHash('sha256');
  /** sha256 of the whole result, trailer included (see digest()) */
  private whole: Buffer | null = null;
  private done = false;

  constructor(private readonly state: ShardState, opts: SnapshotWriterOptions = {}) {
    this.shard = state.shard;
    this.epoch = state.epoch;
    this.sequence = state.sequence;
    this.time = state.time;
    this.arena = opts.arena ?? new ByteArena();
    this.columns = opts.columns ?? null;
    this.reuse = opts.output;
    this.work = this.write(Math.max(OUTPUT_MIN_BYTES, opts.sizeHint ?? 0));
  }

  /**
   * Works until finished or until `shouldYield` says stop (asked about every few hundred
   * items); true once the bytes are ready. The state may change between calls, never during.
   */
  step(shouldYield: () => boolean): boolean {
    while (!this.done) {
      if (this.work.next().done === true) break;
      if (shouldYield()) break;
    }
    return this.done;
  }

  /** The snapshot: magic, payload, sha256 trailer. */
  result(): Uint8Array {
    if (!this.done) throw new Error('snapshot writer: not finished');
    return this.output.subarray(0, this.length);
  }

  /** sha256 of result(), all of it: what a store checks the bytes against. */
  digest(): Uint8Array {
    if (this.whole === null) throw new Error('snapshot writer: not finished');
    return this.whole;
  }

  /** All the memory result() is the start of: pass it to a later writer as `output`. */
  memory(): Buffer {
    if (!this.done) throw new Error('snapshot writer: not finished');
    return this.output;
  }

  private *write(sizeHint: number): Step {
    const books = this.booksAt();
    yield;
    const reuse = this.reuse;
    this.output = reuse !== undefined && reuse.length >= sizeHint
      ? reuse : Buffer.allocUnsafeSlow(sizeHint);
    const head = new ByteSink(this.arena);
    head.u32(this.shard).u32(this.epoch).f64(this.sequence).f64(this.time).u32(books.length);
    yield* this.append([SNAPSHOT_MAGIC, ...head.pieces()]);
    for (const { book, accounts, transfers } of books) {
      this.arena.reset(); // the parts of the tenant before were copied to the output
      const out = new ByteSink(this.arena);
      out.str(book.tenant).u32(accounts).u32(transfers);
      const lengths = out.child();
      const accountSection = out.child();
      const transferSection = out.child();
      const columns = this.columnsOf(book, accounts, transfers);
      yield* this.accounts(accountSection, book, accounts, columns);
      yield* this.transfers(transferSection, book, transfers, columns);
      lengths.f64(accountSection.length).f64(transferSection.length);
      yield* this.append(out.pieces());
    }
    this.arena.reset();
    // The trailer is the digest of what comes before it; the digest of all of it takes just
    // the trailer more (a store's checksum of the bytes, without hashing them a second time).
    const trailer = this.hash.copy().digest();
    yield* this.append([trailer], false);
    this.whole = this.hash.update(trailer).digest();
    this.done = true;
  }

  /** The kept columns of a book, if they are whole and not ahead of this snapshot. */
  private columnsOf(book: TenantBook, accounts: number, transfers: number): BookColumns {
    const kept = this.columns?.get(book);
    if (kept !== undefined && kept.valid && kept.accounts <= accounts &&
      kept.transfers <= transfers) {
      return kept;
    }
    const fresh = new BookColumns();
    this.columns?.set(book, fresh);
    return fresh;
  }

  /** The tenants to write, by id: those with accounts or transfers at the sequence. */
  private booksAt(): BookAt[] {
    const books: BookAt[] = [];
    for (const id of [...this.state.tenants.keys()].sort()) {
      const book = this.state.tenants.get(id);
      if (book === undefined) continue;
      const accounts = accountsAt(book, this.sequence);
      const transfers = transfersAt(book.transfers, this.sequence);
      if (accounts > 0 || transfers > 0) books.push({ book, accounts, transfers });
    }
    return books;
  }

  /** Copies parts to the output (and into the hash, unless it is the digest), in steps. */
  private *append(pieces: Uint8Array[], hashed = true): Step {
    for (const piece of pieces) {
      for (let from = 0; from < piece.length; from += COPY_STEP) {
        const part = piece.subarray(from, Math.min(piece.length, from + COPY_STEP));
        yield* this.reserve(part.length);
        this.output.set(part, this.length);
        if (hashed) this.hash.update(part);
        this.length += part.length;
        yield;
      }
    }
  }

  /** Room for `n` more output bytes; a larger output is copied over a step at a time. */
  private *reserve(n: number): Step {
    if (this.length + n <= this.output.length) return;
    const next = Buffer.allocUnsafeSlow(Math.max(2 * this.output.length, this.length + n));
    for (let from = 0; from < this.length; from += COPY_STEP) {
      next.set(this.output.subarray(from, Math.min(this.length, from + COPY_STEP)), from);
      yield;
    }
    this.output = next;
  }

  private *accounts(out: ByteSink, book: TenantBook, n: number, c: BookColumns): Step {
    c.valid = false;
    while (c.accounts < n) {
      for (const end = Math.min(n, c.accounts + STEP); c.accounts < end; c.accounts++) {
        const a = book.account(c.accounts);
        c.accountIds.add(a.id);
        c.currency.add(a.currencyCode);
        c.metadata.add(a.metadata);
        c.allowNegative.add(a.allowNegative ? 1 : 0);
        c.createdAt.add(a.createdAt);
        c.accountSequence.add(a.sequence);
      }
      yield;
    }
    c.valid = true;
    for (const column of [c.accountIds, c.currency, c.metadata, c.allowNegative, c.createdAt,
      c.accountSequence]) column.emit(out);
    const totals = [out.child(), out.child(), out.child(), out.child()] as const;
    const [pd, pc, hd, hc] = totals;
    const wide = new SinkList(out);
    for (let k0 = 0; k0 < n; k0 += STEP) {
      for (let k = k0; k < Math.min(n, k0 + STEP); k++) {
        const a = book.account(k);
        if (!a.wide && !movedSince(book, a, this.sequence)) {
          // the common case, without an array of totals per account: as writeTotals does
          pd.uv(a.pd + 1);
          pc.uv(a.pc + 1);
          hd.uv(a.hd + 1);
          hc.uv(a.hc + 1);
        } else {
          writeTotals(totals, wide, k, totalsAt(book, a, this.sequence));
        }
      }
      yield;
    }
    wide.finish();
  }

  private *transfers(out: ByteSink, book: TenantBook, n: number, c: BookColumns): Step {
    c.valid = false;
    while (c.transfers < n) {
      const t = book.transfers; // re-read: the columns are replaced when they grow
      for (const end = Math.min(n, c.transfers + STEP); c.transfers < end; c.transfers++) {
        addTransfer(c, t, c.transfers);
      }
      yield;
    }
    c.valid = true;
    for (const column of [c.transferIds, c.amount, c.time, c.sequence, c.from, c.to]) {
      column.emit(out);
    }
    const status = out.column(n);
    c.wideAmounts.emit(out);
    const lists = { settled: new SinkList(out), widePosted: new SinkList(out) };
    c.extras.emit(out);
    for (let i0 = 0; i0 < n; i0 += SCAN_STEP) {
      const t = book.transfers;
      for (let i = i0; i < Math.min(n, i0 + SCAN_STEP); i++) {
        status[i] = this.transferAt(t, i, lists);
      }
      yield;
    }
    lists.settled.finish();
    lists.widePosted.finish();
  }

  /** Transfer i's status at the sequence; lists its settlement if it was settled by then. */
  private transferAt(t: TransferColumns, i: number, lists: TransferLists): number {
    const status = t.status[i] ?? Status.rejected;
    const settled = t.settleSequence[i] ?? 0;
    if (settled > this.sequence) {
      if (!isSettled(status)) throw new Error(`snapshot: transfer #${i} settled but ${status}`);
      return Status.pending; // settled after the sequence: still a hold then
    }
    const amount = t.amount[i] ?? WIDE;
    if (status === Status.posted && (t.posted[i] !== amount ||
      (amount === WIDE && t.widePosted.get(i) !== t.wideAmounts.get(i)))) {
      throw new Error(`snapshot: posted transfer #${i} moved other than its amount`);
    }
    if (status !== Status.posted && status !== Status.postedPending && t.posted[i] !== 0) {
      throw new Error(`snapshot: transfer #${i} has a posted amount in status ${status}`);
    }
    if (settled > 0) {
      const posted = status === Status.postedPending ? (t.posted[i] ?? 0) : 0;
      lists.settled.add().u32(i).f64(settled).f64(t.settleTime[i] ?? 0).f64(posted);
      if (posted === WIDE) lists.widePosted.add().u32(i).i64(wideOf(t.widePosted, i));
    }
    return status;
  }
}

/** Appends what never changes about transfer i to the kept columns. */
function addTransfer(c: BookColumns, t: TransferColumns, i: number): void {
  const amount = t.amount[i] ?? WIDE;
  c.transferIds.addId(t.ids, i);
  c.amount.add(amount);
  c.time.add(t.time[i] ?? 0);
  c.sequence.add(t.sequence[i] ?? 0);
  c.from.add(t.from[i] ?? WIDE);
  c.to.add(t.to[i] ?? WIDE);
  if (amount === WIDE) c.wideAmounts.add().u32(i).i64(wideOf(t.wideAmounts, i));
  const extra = t.extras.size > 0 ? t.extras.get(i) : undefined;
  if (extra === undefined) return;
  const s = c.extras.add();
  s.u32(i).str(extra.fromAccountId).str(extra.toAccountId).str(extra.currencyCode);
  s.str(extra.description).str(extra.paymentTypeId).u8(extra.pending ? 1 : 0);
  s.f64(extra.timeoutSeconds ?? -1).str(extra.rejectCode);
}

interface TransferLists {
  settled: SinkList;
  widePosted: SinkList;
}

function isSettled(status: number): boolean {
  return status === Status.postedPending || status === Status.voidedClient ||
    status === Status.voidedTimeout;
}

function wideOf(map: ReadonlyMap<number, bigint>, i: number): bigint {
  const value = map.get(i);
  if (value === undefined) throw new Error(`snapshot: transfer #${i} lost its wide amount`);
  return value;
}

/** Accounts of the book created at or before `sequence` (a prefix: creation order). */
export function accountsAt(book: TenantBook, sequence: number): number {
  const list = book.accountList;
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid] as Account).sequence <= sequence) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Transfers of the book created at or before `sequence` (a prefix: sequence order). */
export function transfersAt(t: TransferColumns, sequence: number): number {
  let lo = 0;
  let hi = t.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((t.sequence[mid] ?? 0) <= sequence) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** [postedDebits, postedCredits, pendingDebits, pendingCredits] of an account. */
type Totals = [bigint, bigint, bigint, bigint] | [number, number, number, number];

/** The account's totals as at `sequence`: the live ones minus every effect after it. */
function totalsAt(book: TenantBook, a: Account, sequence: number): Totals {
  const t = book.transfers;
  if (!movedSince(book, a, sequence)) {
    return a.wide ? [a.postedDebits, a.postedCredits, a.pendingDebits, a.pendingCredits]
      : [a.pd, a.pc, a.hd, a.hc];
  }
  let [pd, pc, hd, hc] = [a.postedDebits, a.postedCredits, a.pendingDebits, a.pendingCredits];
  for (let c = a.codeCount - 1; c >= 0; c--) {
    const code = a.codeAt(c);
    if (effectSequence(t, code) <= sequence) break;
    const i = code >> 1;
    const debit = t.from[i] === a.index;
    if (debit === (t.to[i] === a.index)) throw new Error(`snapshot: ${a.id} not in #${i}`);
    const amount = t.amountOf(i);
    if ((code & 1) === 0 && t.status[i] === Status.posted) {
      if (debit) pd -= amount; // undo a posted creation
      else pc -= amount;
    } else if ((code & 1) === 0) {
      if (debit) hd -= amount; // undo a hold's creation
      else hc -= amount;
    } else {
      const posted = t.status[i] === Status.postedPending ? t.postedOf(i) : 0n;
      if (debit) [hd, pd] = [hd + amount, pd - posted]; // undo a settlement: the hold is back
      else [hc, pc] = [hc + amount, pc - posted];
    }
  }
  if (pd < 0n || pc < 0n || hd < 0n || hc < 0n) {
    throw new Error(`snapshot: ${a.id} totals below zero at the seal`);
  }
  return [pd, pc, hd, hc];
}

/** Whether any effect on the account came after `sequence` (its newest one did). */
function movedSince(book: TenantBook, a: Account, sequence: number): boolean {
  return a.codeCount > 0 && effectSequence(book.transfers, a.codeAt(a.codeCount - 1)) > sequence;
}

function effectSequence(t: TransferColumns, code: number): number {
  const i = code >> 1;
  return ((code & 1) === 0 ? t.sequence[i] : t.settleSequence[i]) ?? 0;
}

/** Narrow totals into the four columns; an account with any total past 2^53 - 1 is listed. */
function writeTotals(cols: readonly ByteSink[], wide: SinkList, k: number,
  totals: Totals): void {
  let narrow = true;
  for (const v of totals) if (v > SAFE) narrow = false;
  for (let c = 0; c < 4; c++) (cols[c] as ByteSink).uv(narrow ? Number(totals[c]) + 1 : 0);
  if (narrow) return;
  const s = wide.add().u32(k);
  for (const v of totals) s.i64(BigInt(v));
}
