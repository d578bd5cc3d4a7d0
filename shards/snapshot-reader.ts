// Decoder of the snapshot payload (layout in snapshot-codec.ts): rebuilds every index and
// checks every field, throwing SnapshotError on anything it cannot fully check. Built for
// millions of records: columns are copied, not walked, and no object is made per transfer.

import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import {
  Account, Hold, MAX_MINOR, ShardState, Status, TenantBook, isStatusCode,
} from './ledger-book.js';
import { ByteSource, SnapshotError } from './snapshot-bytes.js';
import {
  ScratchColumn, byteColumn, dictValue, eachString, int32Values, readDict, readStringColumn,
  rising, values, type StringColumnBytes,
} from './snapshot-columns.js';
import { BookColumns } from './snapshot-writer.js';
import { compareTimeouts } from './timeout-heap.js';
import { WIDE, type TransferColumns, type TransferExtra } from './transfer-columns.js';
import { expiresAt } from './ledger-views.js';


/** One tenant's two sections, found in a first pass over the payload. */
interface Sections {
  book: TenantBook;
  /** the book's unchanging columns, taken from the bytes (null: not asked for) */
  keep: BookColumns | null;
  what: string;
  accounts: number;
  transfers: number;
  accountBytes: Buffer;
  transferBytes: Buffer;
}

/**
 * The state in `payload`. With `columns`, each book's unchanging columns are also put there
 * as a SnapshotWriter keeps them (BookColumns), by reference to the payload's bytes, so the
 * next snapshot of the recovered shard encodes only what is new, as later snapshots do.
 */
export function decodePayload(payload: Buffer,
  columns?: WeakMap<TenantBook, BookColumns>): ShardState {
  const src = new ByteSource(payload);
  const shard = src.u32('shard');
  const state = new ShardState(shard, src.u32('epoch'));
  state.sequence = whole(src.f64('sequence'), 'sequence');
  state.time = whole(src.f64('time'), 'time');
  const tenants = src.u32('tenant count');
  const sections: Sections[] = [];
  for (let k = 0; k < tenants; k++) {
    const what = `tenants[${k}]`;
    const book = new TenantBook(src.text(`${what}.id`), state.history);
    const previous = sections[k - 1]?.book.tenant;
    if (previous !== undefined && book.tenant <= previous) {
      throw new SnapshotError('tenants out of order');
    }
    state.tenants.set(book.tenant, book);
    const accounts = src.u32(`${what}.accounts`);
    const transfers = src.u32(`${what}.transfers`);
    if (accounts === 0 && transfers === 0) throw new SnapshotError(`${what} is empty`);
    const accountLength = whole(src.f64(`${what} length`), `${what} length`);
    const transferLength = whole(src.f64(`${what} length`), `${what} length`);
    sections.push({ book, what, accounts, transfers,
      keep: columns === undefined ? null : new BookColumns(),
      accountBytes: src.bytes(accountLength, `${what}.accounts`),
      transferBytes: src.bytes(transferLength, `${what}.transfers`) });
  }
  if (src.remaining !== 0) throw new SnapshotError(`${src.remaining} bytes after the tenants`);
  // Every tenant's transfer columns first, the account objects after: each large typed array
  // counts towards V8's external memory and may start a full GC, whose cost grows with the
  // objects already made, so the arrays are made while there are few.
  const scratch = new ScratchColumn();
  for (const s of sections) {
    const part = new ByteSource(s.transferBytes);
    decodeTransfers(state, s, part, scratch);
    if (part.remaining !== 0) throw new SnapshotError(`${s.what}.transfers: trailing bytes`);
  }
  for (const s of sections) {
    const part = new ByteSource(s.accountBytes);
    const kept = decodeAccounts(state, s, part);
    if (part.remaining !== 0) throw new SnapshotError(`${s.what}.accounts: trailing bytes`);
    rebuildHistories(s.book);
    if (kept && s.keep !== null) columns?.set(s.book, s.keep);
  }
  rebuildTimeouts(state);
  return state;
}

/** A safe integer >= 0 (sequences, times, counts). */
function whole(n: number, what: string): number {
  if (!Number.isSafeInteger(n) || n < 0) throw new SnapshotError(`${what} is not an integer`);
  return n;
}

/**
 * The account objects, each made as its id is decoded (no array of ids or values kept).
 * Returns whether the section's unchanging columns went into its `keep`.
 */
function decodeAccounts(state: ShardState, section: Sections, src: ByteSource): boolean {
  const { book, accounts: n } = section;
  const what = `${section.what}.accounts`;
  const ids = readStringColumn(src, n, `${what}.ids`);
  const currencies = readDict(src, n, `${what}.currency`);
  const metadata = readDict(src, n, `${what}.metadata`);
  const raw = new Marks(src);
  const allowNegative = raw.mark('allowNegative', byteColumn(src, n, `${what}.allowNegative`));
  const createdAt = raw.mark('createdAt', rising(src, n, `${what}.createdAt`));
  const sequence = raw.mark('sequence', rising(src, n, `${what}.sequence`));
  const keep = section.keep;
  const kept = keep !== null && keep.currency.adopt(currencies) && keep.metadata.adopt(metadata);
  if (kept) {
    keep.accountIds.adopt(ids);
    keep.allowNegative.adopt(raw.at('allowNegative'));
    keep.createdAt.adopt(raw.at('createdAt'), createdAt[n - 1] ?? 0);
    keep.accountSequence.adopt(raw.at('sequence'), sequence[n - 1] ?? 0);
    keep.accounts = n;
  }
  const totals = [0, 1, 2, 3].map((c) => values(src, n, `${what}.totals[${c}]`));
  const wide = readWideTotals(src, n, `${what}.wide`);
  let last = 0;
  book.totals.reserve(n);
  // The index straight from the id bytes when all are ASCII and distinct; else one by one.
  const loaded = book.accounts.loadIds(ids.bytes, ids.lengths, n);
  eachString(ids, n, `${what}.ids`, (k, id) => {
    const flag = allowNegative[k] ?? 2;
    const seq = sequence[k] ?? -1;
    const created = createdAt[k] ?? -1;
    if (flag > 1 || !isMinor(seq) || seq <= last || seq > state.sequence || !isMinor(created) ||
      created > state.time) {
      throw new SnapshotError(`${what}[${k}]: allowNegative, sequence or createdAt is wrong`);
    }
    last = seq;
    const account = new Account(book, k, id, dictValue(currencies, k), flag === 1,
      dictValue(metadata, k), created, seq, book.totals);
    setTotals(account, totals, k, wide.size > 0 ? wide.get(k) : undefined, what);
    if (loaded) {
      book.accounts.adopt(account);
    } else {
      if (book.accounts.has(id)) throw new SnapshotError(`${what}[${k}] repeats an id`);
      book.accounts.add(account);
    }
  });
  return kept;
}

/**
 * The bytes of each column read through `src`, by name: mark() right after each read (a
 * column's bytes run from the end of the one marked before it).
 */
class Marks {
  private readonly ranges = new Map<string, Buffer>();
  private from: number;

  constructor(private readonly src: ByteSource) {
    this.from = src.offset;
  }

  /** Names the bytes of the column just read; returns the column as is. */
  mark<T>(name: string, column: T): T {
    this.ranges.set(name, this.src.since(this.from));
    this.from = this.src.offset;
    return column;
  }

  at(name: string): Buffer {
    const range = this.ranges.get(name);
    if (range === undefined) throw new Error(`snapshot reader: no column ${name} marked`);
    return range;
  }
}

type Totals = [bigint, bigint, bigint, bigint];

function readWideTotals(src: ByteSource, n: number, what: string): Map<number, Totals> {
  const wide = new Map<number, Totals>();
  let previous = -1;
  const count = src.u32(`${what} count`);
  for (let j = 0; j < count; j++) {
    const k = src.u32(`${what}[${j}].index`);
    if (k <= previous || k >= n) throw new SnapshotError(`${what}[${j}] out of order`);
    previous = k;
    const at = `${what}[${j}]`;
    const values: Totals = [src.i64(at), src.i64(at), src.i64(at), src.i64(at)];
    if (values.every((v) => v <= BigInt(Number.MAX_SAFE_INTEGER))) {
      throw new SnapshotError(`${what}[${j}] fits the columns`);
    }
    wide.set(k, values);
  }
  return wide;
}

/** Narrow totals go straight into the account; wide ones through its bigint setters. */
function setTotals(a: Account, totals: Float64Array[], k: number, wide: Totals | undefined,
  accounts: string): void {
  const what = wide === undefined ? '' : `${accounts}[${k}]`;
  const [pdc, pcc, hdc, hcc] = totals as [Float64Array, Float64Array, Float64Array, Float64Array];
  const pd = pdc[k] ?? -2;
  const pc = pcc[k] ?? -2;
  const hd = hdc[k] ?? -2;
  const hc = hcc[k] ?? -2;
  if (wide !== undefined) {
    if (pd !== WIDE || pc !== WIDE || hd !== WIDE || hc !== WIDE) {
      throw new SnapshotError(`${what} is listed wide but has narrow totals`);
    }
    for (const v of wide) if (v < 0n || v > MAX_MINOR) throw new SnapshotError(`${what} total`);
    [a.postedDebits, a.postedCredits, a.pendingDebits, a.pendingCredits] = wide;
    return;
  }
  if (!(isMinor(pd) && isMinor(pc) && isMinor(hd) && isMinor(hc))) {
    throw new SnapshotError(`${accounts}[${k}] total is not minor units`);
  }
  a.setNarrow(pd, pc, hd, hc);
}

/**
 * The capacity live growth (doubling from `min`) gives an array of `n` items: decoded arrays
 * get the same room, so the first appends after a recovery do not regrow every book and
 * every account at once (that churn made the tail replay mostly garbage collection).
 */
function grownCapacity(n: number, min: number): number {
  let capacity = min;
  while (capacity < n) capacity *= 2;
  return capacity;
}

function isMinor(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function decodeTransfers(state: ShardState, section: Sections, src: ByteSource,
  scratch: ScratchColumn): void {
  const t = section.book.transfers;
  const n = section.transfers;
  const what = `${section.what}.transfers`;
  // Millions of ids: loaded straight from their bytes (no string each) when all are ASCII;
  // otherwise, or to name a repeated id, one by one.
  const ids = readStringColumn(src, n, `${what}.ids`, scratch);
  if (!t.ids.loadAscii(ids.bytes, ids.lengths, n)) {
    eachString(ids, n, `${what}.ids`, (i, id) => {
      if (t.ids.find(id) !== -1) throw new SnapshotError(`${what}.ids[${i}] repeats an id`);
      t.ids.add(id);
    });
  }
  const capacity = grownCapacity(n, 8);
  const raw = new Marks(src);
  t.amount = raw.mark('amount', values(src, n, `${what}.amount`, capacity));
  t.time = raw.mark('time', rising(src, n, `${what}.time`, capacity));
  t.sequence = raw.mark('sequence', rising(src, n, `${what}.sequence`, capacity));
  t.from = raw.mark('from', int32Values(src, n, `${what}.from`, capacity, scratch));
  t.to = raw.mark('to', int32Values(src, n, `${what}.to`, capacity, scratch));
  t.status = raw.mark('status', byteColumn(src, n, `${what}.status`, capacity));
  t.posted = new Float64Array(capacity);
  t.settleSequence = new Float64Array(capacity);
  t.settleTime = new Float64Array(capacity);
  raw.mark('wideAmounts', readWide(src, t, t.wideAmounts, (i) => t.amount[i] === WIDE,
    `${what}.wideAmounts`));
  const settled = raw.mark('settled', readSettled(state, src, t, `${what}.settled`));
  raw.mark('widePosted', readWide(src, t, t.widePosted, (i) => t.settleSequence[i] !== 0 &&
    t.posted[i] === WIDE, `${what}.widePosted`));
  const rejected = raw.mark('extras', readExtras(src, t, `${what}.extras`));
  checkTransfers(state, t, section.accounts, settled, rejected, what);
  checkExtras(t, what);
  if (section.keep !== null) keepTransfers(section.keep, t, ids, raw);
}

/** The transfers' unchanging columns as read (marked in decodeTransfers), by reference. */
function keepTransfers(keep: BookColumns, t: TransferColumns, ids: StringColumnBytes,
  raw: Marks): void {
  const n = t.count;
  keep.transferIds.adopt(ids);
  keep.amount.adopt(raw.at('amount'));
  keep.time.adopt(raw.at('time'), t.time[n - 1] ?? 0);
  keep.sequence.adopt(raw.at('sequence'), t.sequence[n - 1] ?? 0);
  keep.from.adopt(raw.at('from'));
  keep.to.adopt(raw.at('to'));
  // a list is its u32 count, then its items
  keep.wideAmounts.adopt(t.wideAmounts.size, raw.at('wideAmounts').subarray(4));
  keep.extras.adopt(t.extras.size, raw.at('extras').subarray(4));
  keep.transfers = n;
}

/** [index, i64] items in index order, each where `belongs` says a wide value must be. */
function readWide(src: ByteSource, t: TransferColumns, into: Map<number, bigint>,
  belongs: (i: number) => boolean, what: string): void {
  let previous = -1;
  const count = src.u32(`${what} count`);
  for (let j = 0; j < count; j++) {
    const i = src.u32(`${what}[${j}].index`);
    if (i <= previous || i >= t.count || !belongs(i)) {
      throw new SnapshotError(`${what}[${j}] is out of order or not wide`);
    }
    previous = i;
    const value = src.i64(`${what}[${j}]`);
    if (value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new SnapshotError(`${what}[${j}] fits its column`);
    }
    into.set(i, value);
  }
}

/** Settled holds: [index, settleSequence, settleTime, posted]; returns how many. */
function readSettled(state: ShardState, src: ByteSource, t: TransferColumns,
  what: string): number {
  let previous = -1;
  const count = src.u32(`${what} count`);
  for (let j = 0; j < count; j++) {
    try {
      previous = readSettledHold(state, src, t, previous);
    } catch (err) {
      throw relabelled(err, `${what}[${j}]`);
    }
  }
  return count;
}

/** One settled hold after index `previous` (labels relative, as in readExtra). */
function readSettledHold(state: ShardState, src: ByteSource, t: TransferColumns,
  previous: number): number {
  const i = src.u32('.index');
  if (i <= previous || i >= t.count) throw new SnapshotError(' is out of order');
  const sequence = whole(src.f64('.sequence'), '.sequence');
  const time = whole(src.f64('.time'), '.time');
  const posted = src.f64('.posted');
  const status = t.status[i];
  const postedOk = status === Status.postedPending
    ? posted === WIDE || (Number.isSafeInteger(posted) && posted >= 0)
    : (status === Status.voidedClient || status === Status.voidedTimeout) && posted === 0;
  if (!postedOk || sequence <= (t.sequence[i] ?? 0) || sequence > state.sequence ||
    time < (t.time[i] ?? 0) || time > state.time) {
    throw new SnapshotError(' does not fit its transfer');
  }
  t.settleSequence[i] = sequence;
  t.settleTime[i] = time;
  t.posted[i] = posted;
  return i;
}

/** The extras in index order; returns how many record a rejection. */
function readExtras(src: ByteSource, t: TransferColumns, what: string): number {
  let previous = -1;
  let rejections = 0;
  const count = src.u32(`${what} count`);
  for (let j = 0; j < count; j++) {
    try {
      previous = readExtra(src, t, previous);
    } catch (err) {
      throw relabelled(err, `${what}[${j}]`);
    }
    if ((t.extras.get(previous)?.rejectCode ?? null) !== null) rejections++;
  }
  return rejections;
}

/**
 * One extra, after index `previous`; returns its index. Its labels are relative ('.from'):
 * the caller prefixes the item's own label only when something fails, so a decode of
 * millions of extras builds no label strings.
 */
function readExtra(src: ByteSource, t: TransferColumns, previous: number): number {
  const i = src.u32('.index');
  if (i <= previous || i >= t.count) throw new SnapshotError(' is out of order');
  const fromAccountId = src.text('.from');
  const toAccountId = src.text('.to');
  const currencyCode = src.text('.currency');
  const description = src.str('.description', true);
  const paymentTypeId = src.str('.paymentTypeId', true);
  const flag = src.u8('.pending');
  const seconds = src.f64('.timeoutSeconds');
  const code = src.str('.rejectCode', true);
  const rejectCode: ErrorCode | null = code === null ? null : isErrorCode(code) ? code : null;
  if (flag > 1 || (code !== null && rejectCode === null) ||
    (seconds !== -1 && !Number.isSafeInteger(seconds)) || seconds < -1 ||
    (rejectCode !== null) !== (t.status[i] === Status.rejected)) {
    throw new SnapshotError(' does not fit its transfer');
  }
  const extra: TransferExtra = { fromAccountId, toAccountId, currencyCode, description,
    paymentTypeId, pending: flag === 1, timeoutSeconds: seconds === -1 ? null : seconds,
    rejectCode };
  t.extras.set(i, extra);
  return i;
}

/** A SnapshotError with a relative message ('.from: truncated') under its item's label. */
function relabelled(err: unknown, label: string): unknown {
  return err instanceof SnapshotError ? new SnapshotError(`${label}${err.why}`) : err;
}

/**
 * Every transfer's columns agree with each other, with the lists and with the book. Settled
 * statuses are counted, not settle columns read: readSettled put a settlement on `settled`
 * distinct transfers, each with a settled status, so equal counts mean exactly those have
 * one; and untouched columns stay untouched (a first touch costs a page fault per 4 KiB).
 */
function checkTransfers(state: ShardState, t: TransferColumns, accounts: number,
  settled: number, rejected: number, what: string): void {
  const { status, sequence, time, amount, from, to, posted } = t;
  let last = 0;
  let settledSeen = 0;
  let rejectedSeen = 0;
  for (let i = 0; i < t.count; i++) {
    const s = status[i];
    const seq = sequence[i] ?? -1;
    const at = time[i] ?? -1;
    const n = amount[i] ?? -2;
    const debit = from[i] ?? -2;
    const credit = to[i] ?? -2;
    const isRejected = s === Status.rejected;
    const isSettled = isSettledStatus(s);
    const ok = isStatusCode(s) && Number.isSafeInteger(seq) && seq > last &&
      seq <= state.sequence && Number.isSafeInteger(at) && at >= 0 && at <= state.time &&
      (n === WIDE ? t.wideAmounts.has(i) : Number.isSafeInteger(n) && n >= 0) &&
      (isRejected ? debit === WIDE && credit === WIDE
        : debit >= 0 && debit < accounts && credit >= 0 && credit < accounts) &&
      (!isSettled || posted[i] !== WIDE || t.widePosted.has(i));
    if (!ok) throw new SnapshotError(`${what}[${i}] does not fit its columns or book`);
    last = seq;
    if (isRejected) rejectedSeen++;
    if (isSettled) settledSeen++;
    if (s === Status.posted) {
      posted[i] = n; // a posted transfer moved exactly its amount
      if (n === WIDE) t.widePosted.set(i, t.wideAmounts.get(i) ?? 0n);
    }
  }
  if (settledSeen !== settled || rejectedSeen !== rejected) {
    throw new SnapshotError(`${what}: settlements or rejections do not match the transfers`);
  }
}

function isSettledStatus(status: number | undefined): boolean {
  return status === Status.postedPending || status === Status.voidedClient ||
    status === Status.voidedTimeout;
}

function checkExtras(t: TransferColumns, what: string): void {
  for (const [i, extra] of t.extras) {
    const seconds = extra.timeoutSeconds;
    if (seconds !== null && !Number.isSafeInteger((t.time[i] ?? 0) + seconds * 1000)) {
      throw new SnapshotError(`${what}.extras of #${i}: timeoutSeconds is out of range`);
    }
  }
}

/**
 * Account histories in sequence order, exactly as live effects appended them: creations come
 * in transfer order (already sequence order), settlements sorted by their own sequence. Built
 * in one array per book, in which each history gets the room live growth would have given it
 * (its own array once it outgrows that), instead of a push at a time into a million arrays.
 */
function rebuildHistories(book: TenantBook): void {
  const t = book.transfers;
  const accounts = book.accountList;
  const counts = new Int32Array(accounts.length);
  const settled: number[] = [];
  for (let i = 0; i < t.count; i++) {
    const status = t.status[i];
    if (status === Status.rejected) continue;
    const times = isSettledStatus(status) ? 2 : 1; // and then settled (checkTransfers)
    if (times === 2) settled.push(i);
    const from = t.from[i] ?? 0;
    const to = t.to[i] ?? 0;
    counts[from] = (counts[from] ?? 0) + times;
    counts[to] = (counts[to] ?? 0) + times;
  }
  const starts = new Int32Array(accounts.length + 1);
  for (let k = 0; k < accounts.length; k++) {
    starts[k + 1] = (starts[k] ?? 0) + grownCapacity(counts[k] ?? 0, 4);
  }
  const all = new Int32Array(starts[accounts.length] ?? 0);
  const next = starts.slice(0, accounts.length);
  const push = (code: number): void => {
    const i = code >> 1;
    all[(next[t.from[i] ?? 0] as number)++] = code;
    all[(next[t.to[i] ?? 0] as number)++] = code;
  };
  settled.sort((a, b) => (t.settleSequence[a] ?? 0) - (t.settleSequence[b] ?? 0));
  let s = 0;
  let due = settled.length > 0 ? (t.settleSequence[settled[0] ?? 0] ?? 0) : Infinity;
  for (let i = 0; i < t.count; i++) {
    if (t.status[i] === Status.rejected) continue;
    const sequence = t.sequence[i] ?? 0;
    while (due < sequence) {
      push(2 * (settled[s] ?? 0) + 1);
      due = ++s < settled.length ? (t.settleSequence[settled[s] ?? 0] ?? 0) : Infinity;
    }
    push(2 * i);
  }
  for (; s < settled.length; s++) push(2 * (settled[s] ?? 0) + 1);
  for (let k = 0; k < accounts.length; k++) {
    const start = starts[k] ?? 0;
    (accounts[k] as Account).adoptCodes(all, start, counts[k] ?? 0, (starts[k + 1] ?? 0) - start);
  }
}

/** Holds of pending transfers with a timeout; a sorted array is a valid min-heap. */
function rebuildTimeouts(state: ShardState): void {
  const queued: Hold[] = [];
  for (const book of state.tenants.values()) {
    const t = book.transfers;
    for (const i of t.extras.keys()) { // a timeout lives in the extras, in index order
      const expiry = t.status[i] === Status.pending ? expiresAt(book, i) : null;
      if (expiry === null) continue;
      const hold = new Hold(book, i, t.ids.keyAt(i), expiry);
      book.holds.set(i, hold);
      queued.push(hold);
    }
  }
  queued.sort(compareTimeouts);
  for (const hold of queued) state.timeouts.push(hold);
}
