// Whole-shard snapshot: deterministic msgpackr bytes (same state, same bytes) framed by a magic
// and a sha256 trailer, and a decoder that rebuilds every index. Never does I/O; never accepts
// bytes it cannot fully check (it throws an Error naming what is wrong instead).

import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { isErrorCode, type ErrorCode } from '../protocol/errors.js';
import { Account, Hold, ShardState, Status, TenantBook, isStatusCode } from './ledger-book.js';
import { compareTimeouts } from './timeout-heap.js';
import { WIDE, type TransferColumns, type TransferExtra } from './transfer-columns.js';
import { expiresAt } from './ledger-views.js';

/** "LSS2": ledger shard snapshot, layout version 2 (columns; version 1 held record arrays). */
const MAGIC = new Uint8Array([0x4c, 0x53, 0x53, 0x32]);
const DIGEST_BYTES = 32;
// Records/structured clone off: plain msgpack arrays, so the bytes depend on the values only.
const packr = new Packr({ useRecords: false, structuredClone: false, moreTypes: false });

/*
 * Payload layout (msgpack arrays, bigint as int64):
 *   [shard, epoch, sequence, time, tenants]
 *   tenant   [id, accounts, transfers]                (sorted by id, empty tenants left out)
 *   account  [id, currency, allowNegative, metadata, postedDebits, postedCredits,
 *             pendingDebits, pendingCredits, createdAt, sequence]        (creation order)
 *   transfers [ids, amount, posted, time, sequence, settleSequence, settleTime, from, to,
 *             status, wide, extras]
 *     ids: the transfer ids in creation order; then one bin per column (little-endian
 *     float64 / int32 / uint8, exactly `ids.length` values each; see transfer-columns.ts)
 *     wide     [[index, amount | null, posted | null], ...]   (index order)
 *     extras   [[index, from, to, currency, description, paymentTypeId, pending,
 *                timeoutSeconds, rejectCode], ...]            (index order)
 * Account histories, holds and the timeout heap are derived, so they cannot disagree.
 */

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  throw new Error('snapshot: column bytes are written little-endian; this host is not');
}

function bytesOf(column: Float64Array | Int32Array | Uint8Array, count: number): Uint8Array {
  return new Uint8Array(column.buffer, column.byteOffset, count * column.BYTES_PER_ELEMENT);
}

function sortedEntries<V>(map: ReadonlyMap<number, V>): Array<[number, V]> {
  return [...map.entries()].sort((a, b) => a[0] - b[0]);
}

function encodeTransfers(t: TransferColumns): unknown[] {
  const n = t.count;
  const wide: unknown[] = [];
  const indexes = new Set([...t.wideAmounts.keys(), ...t.widePosted.keys()]);
  for (const i of [...indexes].sort((a, b) => a - b)) {
    wide.push([i, t.wideAmounts.get(i) ?? null, t.widePosted.get(i) ?? null]);
  }
  const extras: unknown[] = [];
  for (const [i, x] of sortedEntries(t.extras)) {
    extras.push([i, x.fromAccountId, x.toAccountId, x.currencyCode, x.description,
      x.paymentTypeId, x.pending, x.timeoutSeconds, x.rejectCode]);
  }
  const ids: string[] = [];
  for (let i = 0; i < n; i++) ids.push(t.ids.keyAt(i));
  return [ids, bytesOf(t.amount, n), bytesOf(t.posted, n),
    bytesOf(t.time, n), bytesOf(t.sequence, n), bytesOf(t.settleSequence, n),
    bytesOf(t.settleTime, n), bytesOf(t.from, n), bytesOf(t.to, n), bytesOf(t.status, n), wide,
    extras];
}

function encodeTenant(book: TenantBook): unknown[] {
  const accounts: unknown[] = [];
  for (const a of book.accountList) {
    accounts.push([a.id, a.currencyCode, a.allowNegative, a.metadata, a.postedDebits,
      a.postedCredits, a.pendingDebits, a.pendingCredits, a.createdAt, a.sequence]);
  }
  return [book.tenant, accounts, encodeTransfers(book.transfers)];
}

export function encodeSnapshot(state: ShardState): Uint8Array {
  const tenants: unknown[] = [];
  for (const id of [...state.tenants.keys()].sort()) {
    const book = state.tenants.get(id);
    if (book !== undefined && !book.isEmpty()) tenants.push(encodeTenant(book));
  }
  const payload = packr.pack([state.shard, state.epoch, state.sequence, state.time, tenants]);
  const bytes = new Uint8Array(MAGIC.length + payload.length + DIGEST_BYTES);
  bytes.set(MAGIC, 0);
  bytes.set(payload, MAGIC.length);
  const digest = createHash('sha256').update(bytes.subarray(0, MAGIC.length + payload.length));
  bytes.set(digest.digest(), MAGIC.length + payload.length);
  return bytes;
}

/** sha256 hex of the snapshot bytes: equal digests mean equal states. */
export function stateDigest(state: ShardState): string {
  return createHash('sha256').update(encodeSnapshot(state)).digest('hex');
}

class SnapshotError extends Error {
  constructor(why: string) {
    super(`snapshot: ${why}`);
    this.name = 'SnapshotError';
  }
}

function list(value: unknown, what: string, length?: number): unknown[] {
  if (!Array.isArray(value)) throw new SnapshotError(`${what} is not an array`);
  if (length !== undefined && value.length !== length) {
    throw new SnapshotError(`${what} has ${value.length} fields, expected ${length}`);
  }
  return value;
}

function text(value: unknown, what: string): string {
  if (typeof value !== 'string') throw new SnapshotError(`${what} is not a string`);
  return value;
}

function textOrNull(value: unknown, what: string): string | null {
  return value === null ? null : text(value, what);
}

function integer(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || typeof value !== 'number' || value < 0) {
    throw new SnapshotError(`${what} is not a non-negative integer`);
  }
  return value;
}

function integerOrNull(value: unknown, what: string): number | null {
  return value === null ? null : integer(value, what);
}

function minor(value: unknown, what: string): bigint {
  if (typeof value !== 'bigint' || value < 0n) {
    throw new SnapshotError(`${what} is not minor units`);
  }
  return value;
}

function signed(value: unknown, what: string): bigint {
  if (typeof value !== 'bigint') throw new SnapshotError(`${what} is not an integer`);
  return value;
}

function flag(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new SnapshotError(`${what} is not a boolean`);
  return value;
}

function unframe(bytes: Uint8Array): Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new SnapshotError('input is not bytes');
  if (bytes.length < MAGIC.length + DIGEST_BYTES + 1) throw new SnapshotError('too short');
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) throw new SnapshotError('bad magic (not a v2 shard snapshot)');
  }
  const end = bytes.length - DIGEST_BYTES;
  const digest = createHash('sha256').update(bytes.subarray(0, end)).digest();
  for (let i = 0; i < DIGEST_BYTES; i++) {
    if (digest[i] !== bytes[end + i]) throw new SnapshotError('checksum mismatch (corrupt)');
  }
  return bytes.subarray(MAGIC.length, end);
}

export function decodeSnapshot(bytes: Uint8Array): ShardState {
  const payload = unframe(bytes);
  let root: unknown;
  try {
    root = packr.unpack(payload);
  } catch (err) {
    throw new SnapshotError(`payload is not msgpack (${String(err)})`);
  }
  const [shard, epoch, sequence, time, tenants] = list(root, 'root', 5);
  const state = new ShardState(integer(shard, 'shard'), integer(epoch, 'epoch'));
  state.sequence = integer(sequence, 'sequence');
  state.time = integer(time, 'time');
  let previous = '';
  for (const [index, tenant] of list(tenants, 'tenants').entries()) {
    const book = decodeTenant(state, tenant, `tenants[${index}]`);
    if (index > 0 && book.tenant <= previous) throw new SnapshotError('tenants out of order');
    previous = book.tenant;
  }
  rebuildTimeouts(state);
  return state;
}

function decodeTenant(state: ShardState, value: unknown, what: string): TenantBook {
  const [id, accounts, transfers] = list(value, what, 3);
  const book = new TenantBook(text(id, `${what}.id`));
  state.tenants.set(book.tenant, book);
  let last = 0;
  for (const [i, account] of list(accounts, `${what}.accounts`).entries()) {
    last = decodeAccount(state, book, account, `${what}.accounts[${i}]`, last);
  }
  decodeTransfers(state, book, transfers, `${what}.transfers`);
  rebuildHistories(book);
  return book;
}

function checkSequence(state: ShardState, sequence: number, previous: number, what: string) {
  if (sequence <= previous || sequence > state.sequence) {
    throw new SnapshotError(`${what}.sequence ${sequence} out of order`);
  }
}

function decodeAccount(
  state: ShardState,
  book: TenantBook,
  value: unknown,
  what: string,
  last: number,
): number {
  const f = list(value, what, 10);
  const account = new Account(book, book.accountList.length, text(f[0], `${what}.id`),
    text(f[1], `${what}.currency`), flag(f[2], `${what}.allowNegative`),
    text(f[3], `${what}.metadata`), integer(f[8], `${what}.createdAt`),
    integer(f[9], `${what}.sequence`));
  account.postedDebits = minor(f[4], `${what}.postedDebits`);
  account.postedCredits = minor(f[5], `${what}.postedCredits`);
  account.pendingDebits = minor(f[6], `${what}.pendingDebits`);
  account.pendingCredits = minor(f[7], `${what}.pendingCredits`);
  checkSequence(state, account.sequence, last, what);
  if (account.createdAt > state.time) throw new SnapshotError(`${what}.time is after the state`);
  if (book.accounts.has(account.id)) throw new SnapshotError(`${what} repeats an id`);
  book.accounts.set(account.id, account);
  book.accountList.push(account);
  return account.sequence;
}

/** A column of exactly `count` values, copied into its own (aligned) memory. */
function column<A extends Float64Array | Int32Array | Uint8Array>(
  value: unknown, count: number, make: (length: number) => A, what: string,
): A {
  if (!(value instanceof Uint8Array)) throw new SnapshotError(`${what} is not bytes`);
  const out = make(Math.max(count, 8));
  if (value.length !== count * out.BYTES_PER_ELEMENT) {
    throw new SnapshotError(`${what} has ${value.length} bytes for ${count} transfers`);
  }
  new Uint8Array(out.buffer, out.byteOffset, value.length).set(value);
  return out;
}

function decodeTransfers(state: ShardState, book: TenantBook, value: unknown, what: string) {
  const f = list(value, what, 12);
  const ids = list(f[0], `${what}.ids`);
  const n = ids.length;
  const t = book.transfers;
  const f64 = (length: number) => new Float64Array(length);
  const i32 = (length: number) => new Int32Array(length);
  t.amount = column(f[1], n, f64, `${what}.amount`);
  t.posted = column(f[2], n, f64, `${what}.posted`);
  t.time = column(f[3], n, f64, `${what}.time`);
  t.sequence = column(f[4], n, f64, `${what}.sequence`);
  t.settleSequence = column(f[5], n, f64, `${what}.settleSequence`);
  t.settleTime = column(f[6], n, f64, `${what}.settleTime`);
  t.from = column(f[7], n, i32, `${what}.from`);
  t.to = column(f[8], n, i32, `${what}.to`);
  t.status = column(f[9], n, (length) => new Uint8Array(length), `${what}.status`);
  for (const [i, id] of ids.entries()) {
    const key = text(id, `${what}.ids[${i}]`);
    if (t.ids.find(key) !== -1) throw new SnapshotError(`${what}.ids[${i}] repeats an id`);
    t.ids.add(key);
  }
  decodeWide(t, f[10], `${what}.wide`);
  decodeExtras(t, f[11], `${what}.extras`);
  let last = 0;
  for (let i = 0; i < n; i++) last = checkTransfer(state, book, i, last, `${what}[${i}]`);
}

function index(value: unknown, count: number, previous: number, what: string): number {
  const i = integer(value, what);
  if (i >= count || i <= previous) throw new SnapshotError(`${what} is out of order`);
  return i;
}

function decodeWide(t: TransferColumns, value: unknown, what: string): void {
  let previous = -1;
  for (const [k, item] of list(value, what).entries()) {
    const f = list(item, `${what}[${k}]`, 3);
    const i = index(f[0], t.count, previous, `${what}[${k}].index`);
    previous = i;
    if (f[1] !== null) t.wideAmounts.set(i, signed(f[1], `${what}[${k}].amount`));
    if (f[2] !== null) t.widePosted.set(i, signed(f[2], `${what}[${k}].posted`));
  }
}

function decodeExtras(t: TransferColumns, value: unknown, what: string): void {
  let previous = -1;
  for (const [k, item] of list(value, what).entries()) {
    const w = `${what}[${k}]`;
    const f = list(item, w, 9);
    const i = index(f[0], t.count, previous, `${w}.index`);
    previous = i;
    const code = f[8];
    const rejectCode: ErrorCode | null = code === null ? null : isErrorCode(code) ? code : null;
    if (code !== null && rejectCode === null) throw new SnapshotError(`${w}.rejectCode unknown`);
    const extra: TransferExtra = {
      fromAccountId: text(f[1], `${w}.from`), toAccountId: text(f[2], `${w}.to`),
      currencyCode: text(f[3], `${w}.currency`), description: textOrNull(f[4], `${w}.description`),
      paymentTypeId: textOrNull(f[5], `${w}.paymentTypeId`), pending: flag(f[6], `${w}.pending`),
      timeoutSeconds: integerOrNull(f[7], `${w}.timeoutSeconds`), rejectCode,
    };
    t.extras.set(i, extra);
  }
}

/** A column amount: a safe integer >= 0, or WIDE with its value in `wide`. */
function checkAmount(n: number, wide: ReadonlyMap<number, bigint>, i: number, what: string) {
  const ok = n === WIDE ? wide.has(i) : Number.isSafeInteger(n) && n >= 0 && !wide.has(i);
  if (!ok) throw new SnapshotError(`${what} is not an amount`);
}

/** One transfer's columns agree with each other and with the book; returns its sequence. */
function checkTransfer(state: ShardState, book: TenantBook, i: number, last: number,
  what: string): number {
  const t = book.transfers;
  const status = t.status[i];
  if (!isStatusCode(status)) throw new SnapshotError(`${what}.status is unknown`);
  const extra = t.extras.get(i);
  const rejected = status === Status.rejected;
  if (rejected !== (extra?.rejectCode != null)) {
    throw new SnapshotError(`${what}.rejectCode does not fit its status`);
  }
  const sequence = t.sequence[i] ?? 0;
  checkSequence(state, sequence, last, what);
  const time = t.time[i] ?? -1;
  if (!Number.isSafeInteger(time) || time < 0 || time > state.time) {
    throw new SnapshotError(`${what}.time is out of range`);
  }
  checkAmount(t.amount[i] ?? WIDE, t.wideAmounts, i, `${what}.amount`);
  checkAmount(t.posted[i] ?? WIDE, t.widePosted, i, `${what}.posted`);
  const from = t.from[i] ?? WIDE;
  const to = t.to[i] ?? WIDE;
  const count = book.accountList.length;
  const known = from >= 0 && from < count && to >= 0 && to < count;
  if (rejected ? from !== WIDE || to !== WIDE : !known) {
    throw new SnapshotError(`${what} names an unknown account`);
  }
  checkSettlement(state, t, i, what);
  const expiry = expiresAt(book, i);
  if (expiry !== null && !Number.isSafeInteger(expiry)) {
    throw new SnapshotError(`${what}.timeoutSeconds is out of range`);
  }
  return sequence;
}

/** Settled holds carry the sequence and time of their settling entry; nothing else does. */
function checkSettlement(state: ShardState, t: TransferColumns, i: number, what: string) {
  const status = t.status[i];
  const settled = status === Status.postedPending || status === Status.voidedClient ||
    status === Status.voidedTimeout;
  const sequence = t.settleSequence[i] ?? -1;
  const time = t.settleTime[i] ?? -1;
  const ok = settled
    ? Number.isSafeInteger(sequence) && sequence > (t.sequence[i] ?? 0) &&
      sequence <= state.sequence && Number.isSafeInteger(time) && time >= (t.time[i] ?? 0) &&
      time <= state.time
    : sequence === 0 && time === 0;
  if (!ok) throw new SnapshotError(`${what}.settlement does not fit its status`);
}

/**
 * Account histories in sequence order, exactly as live effects appended them: creations come
 * in transfer order (already sequence order), settlements sorted by their own sequence.
 */
function rebuildHistories(book: TenantBook): void {
  const t = book.transfers;
  const settled: number[] = [];
  for (let i = 0; i < t.count; i++) if ((t.settleSequence[i] ?? 0) > 0) settled.push(i);
  settled.sort((a, b) => (t.settleSequence[a] ?? 0) - (t.settleSequence[b] ?? 0));
  let s = 0;
  const push = (code: number): void => {
    const i = code >> 1;
    book.account(t.from[i] ?? WIDE).pushCode(code);
    book.account(t.to[i] ?? WIDE).pushCode(code);
  };
  for (let i = 0; i < t.count; i++) {
    if (t.status[i] === Status.rejected) continue;
    const sequence = t.sequence[i] ?? 0;
    for (; s < settled.length && (t.settleSequence[settled[s] ?? 0] ?? 0) < sequence; s++) {
      push(2 * (settled[s] ?? 0) + 1);
    }
    push(2 * i);
  }
  for (; s < settled.length; s++) push(2 * (settled[s] ?? 0) + 1);
}

/** Holds of pending transfers with a timeout; a sorted array is a valid min-heap. */
function rebuildTimeouts(state: ShardState): void {
  const queued: Hold[] = [];
  for (const book of state.tenants.values()) {
    const t = book.transfers;
    for (let i = 0; i < t.count; i++) {
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
