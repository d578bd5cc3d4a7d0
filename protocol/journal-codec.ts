// Binary layout of one hash-chained JournalEntry record (file journal, PostgreSQL hashes,
// auditor). Pure: node:crypto hashing only, never I/O; decoding never throws on garbage.

import * as crypto from 'node:crypto';
import { ENTRY_KINDS, HASH_BYTES } from './journal-entry.js';
import type { JournalEntry } from './journal-entry.js';
import type { EntryKind } from './types.js';
import { grownBuffer } from './grow-buffer.js';

/*
 * Record layout, version 1 (all integers little-endian):
 *
 *   0   prevHash        32 bytes  hash of the shard's previous entry (ZERO_HASH for sequence 1)
 *   32  body:
 *       +0  version     u8        = 1
 *       +1  kind        u8        index into ENTRY_KINDS
 *       +2  shard       u32
 *       +6  sequence    u32 low, u32 high (high <= 0x1fffff: a safe integer)
 *       +14 epoch       u32
 *       +18 time ms     u32 low, u32 high (high <= 0x1fffff)
 *       +26 amountMinor i64
 *       +34 tenant, id, debitAccountId, creditAccountId, currencyCode: u16 length + UTF-8
 *           detail: u32 length + UTF-8
 *   end hash            32 bytes  SHA-256(prevHash ‖ body)
 *
 * prevHash sits before the body (not after it) so that the hash input `prevHash ‖ body` is one
 * contiguous slice of the buffer: one native hash call per entry, no copy. `entryHash` is the
 * definition the PostgreSQL journal (prev_hash/hash columns) and the auditor share.
 */

export const CODEC_VERSION = 1;
const BODY_FIXED_BYTES = 34;
/** The smallest possible record: hashes, fixed fields and six empty strings. */
export const MIN_RECORD_BYTES = 2 * HASH_BYTES + BODY_FIXED_BYTES + 5 * 2 + 4;
const SHORT_STRING_MAX = 0xffff;
/** Longest detail (with its 4-byte prefix) the encoder keeps to copy instead of re-encoding. */
const DETAIL_CACHE_BYTES = 256;
const LONG_STRING_MAX = 0x7fffffff;
const U32 = 0x1_0000_0000;
const HIGH_MAX = 0x1f_ffff;
/** The signed 64-bit range of amounts on the wire (journal records, thread envelopes). */
export const I64_MIN = -(2n ** 63n);
export const I64_MAX = 2n ** 63n - 1n;

export type DecodeError = 'truncated' | 'bad_version' | 'bad_kind' | 'bad_field' | 'bad_hash';


const KIND_CODES: ReadonlyMap<EntryKind, number> = new Map(ENTRY_KINDS.map((k, i) => [k, i]));

/*
 * A namespace import, not `import { hash }`: on Node < 20.12 the named import would fail to
 * link, while `crypto.hash` is simply undefined and we fall back to createHash.
 *
 * Why 'binary' (latin1) strings for hashes: crypto.hash with a Buffer output costs ~720 ns per
 * call here, with a latin1 string output ~300 ns (the Buffer allocation dominates). A latin1
 * string maps each byte to one char code 0..255 exactly, so it is a lossless, cheap key that
 * is compared with === and written back with buf.write(s, off, 'latin1').
 */
export const sha256Binary: (data: Uint8Array) => string =
  typeof crypto.hash === 'function'
    ? (data) => crypto.hash('sha256', data, 'binary')
    : (data) => crypto.createHash('sha256').update(data).digest('binary');

function viewOf(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function invariant(condition: boolean, message: string): asserts condition {
  if (!condition) throw new RangeError(`journal-codec: ${message}`);
}

function toBinary(bytes: Uint8Array): string {
  invariant(bytes.length === HASH_BYTES, 'a hash must be 32 bytes');
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}

function fromBinary(key: string): Uint8Array {
  return Buffer.from(key, 'latin1');
}

function isWellFormed(s: string): boolean {
  // String.prototype.isWellFormed exists on Node 20 (V8 11.3) but not in our ES2022 lib types.
  const f = (s as unknown as { isWellFormed?: () => boolean }).isWellFormed;
  return typeof f === 'function' ? f.call(s) : !/[\uD800-\uDFFF]/.test(s);
}

/**
 * Appends hash-chained records into one growable Buffer that is reused across calls (reset()
 * keeps the memory). No Buffer is allocated per entry.
 */
export class EntryEncoder {
  private buf: Buffer;
  private view: DataView;
  private used = 0;
  /** the last hash appended (latin1 form) and where its bytes lie (-1: none since reset) */
  private lastKey = '';
  private lastKeyAt = -1;
  /** the last detail written and its bytes, length prefix included */
  private readonly detail = {
    text: null as string | null,
    length: 0,
    view: new DataView(new ArrayBuffer(DETAIL_CACHE_BYTES)),
  };

  constructor(initialBytes = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(initialBytes, 256));
    this.view = viewOf(this.buf);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.used;
  }

  /** Forget the content, keep the memory. */
  reset(): void {
    this.used = 0;
    this.lastKeyAt = -1;
  }

  /** A view of the bytes written; valid until the next reset() or append. */
  bytes(): Buffer {
    return this.buf.subarray(0, this.used);
  }

  /** Reserve `n` bytes (for a caller's frame header); returns their offset. */
  reserve(n: number): number {
    this.ensure(n);
    const at = this.used;
    this.buf.fill(0, at, at + n);
    this.used += n;
    return at;
  }

  writeUInt32At(offset: number, value: number): void {
    invariant(offset + 4 <= this.used, 'writeUInt32At outside the written bytes');
    this.buf.writeUInt32LE(value, offset);
  }

  /**
   * Append `entries` in order as one chain starting after `prevHash`; returns the new chain
   * head (the last entry's hash, a fresh 32-byte copy; `prevHash` itself when empty).
   * Throws RangeError on an entry that cannot be encoded (a programmer error: validate first).
   */
  appendChain(entries: readonly JournalEntry[], prevHash: Uint8Array): Uint8Array {
    let head = toBinary(prevHash);
    for (const entry of entries) head = this.appendOne(entry, head);
    return fromBinary(head);
  }

  /** Append one record after the hash `prevBinary` (latin1 form); returns its hash likewise. */
  appendOne(entry: JournalEntry, prevBinary: string): string {
    const stringChars =
      entry.tenant.length + entry.id.length + entry.debitAccountId.length +
      entry.creditAccountId.length + entry.currencyCode.length + entry.detail.length;
    // A UTF-16 code unit never takes more than 3 UTF-8 bytes.
    this.ensure(MIN_RECORD_BYTES + 3 * stringChars);
    const buf = this.buf;
    const view = this.view;
    const start = this.used;
    // A chain's previous hash is usually the record just written: copied as 8 words, not
    // decoded again from its string.
    if (this.lastKeyAt >= 0 && prevBinary === this.lastKey) {
      copyBytes(view, start, view, this.lastKeyAt, HASH_BYTES);
    }
    else writeHash(buf, view, start, prevBinary);
    let p = writeFixed(buf, view, start + HASH_BYTES, entry);
    p = writeString(buf, p, entry.tenant, false);
    p = writeString(buf, p, entry.id, false);
    p = writeString(buf, p, entry.debitAccountId, false);
    p = writeString(buf, p, entry.creditAccountId, false);
    p = writeString(buf, p, entry.currencyCode, false);
    p = this.writeDetail(buf, view, p, entry.detail);
    const hash = sha256Binary(new Uint8Array(buf.buffer, buf.byteOffset + start, p - start));
    writeHash(buf, view, p, hash);
    this.lastKey = hash;
    this.lastKeyAt = p;
    this.used = p + HASH_BYTES;
    return hash;
  }

  /**
   * The detail string, usually the same constant entry after entry (a transfer without extras):
   * its UTF-8 bytes are kept from the last time and copied a word at a time, not re-encoded.
   */
  private writeDetail(buf: Buffer, view: DataView, at: number, detail: string): number {
    const cache = this.detail;
    if (detail !== cache.text) {
      const end = writeString(buf, at, detail, true);
      const n = end - at;
      if (n > DETAIL_CACHE_BYTES) return end;
      cache.text = detail;
      cache.length = n;
      copyBytes(cache.view, 0, view, at, n);
      return end;
    }
    copyBytes(view, at, cache.view, 0, cache.length);
    return at + cache.length;
  }

  private ensure(extra: number): void {
    const need = this.used + extra;
    if (need <= this.buf.length) return;
    const next = grownBuffer(this.buf, this.used, need);
    this.buf = next;
    this.view = viewOf(next);
  }
}

/**
 * Writes a 32-byte hash given in latin1 form, four chars to a word (a JS loop beats a native
 * call at this size: about 70 ns against 90 for latin1Write, 85 byte by byte).
 */
function writeHash(buf: Buffer, view: DataView, at: number, key: string): void {
  if (key.length !== HASH_BYTES) {
    buf.write(key, at, 'latin1'); // what callers always got for a malformed key (the auditor)
    return;
  }
  for (let i = 0; i < HASH_BYTES; i += 4) {
    view.setInt32(at + i, (key.charCodeAt(i) << 24) | (key.charCodeAt(i + 1) << 16) |
      (key.charCodeAt(i + 2) << 8) | key.charCodeAt(i + 3));
  }
}



function writeFixed(buf: Buffer, view: DataView, at: number, e: JournalEntry): number {
  const kind = KIND_CODES.get(e.kind);
  // Conditions first, messages only on failure: this runs once per entry on the hot path.
  if (
    kind === undefined || e.shard >>> 0 !== e.shard || e.epoch >>> 0 !== e.epoch ||
    !Number.isSafeInteger(e.sequence) || e.sequence < 0 ||
    !Number.isSafeInteger(e.time) || e.time < 0 || typeof e.amountMinor !== 'bigint'
  ) {
    throw new RangeError(`journal-codec: entry fields out of range: ${describe(e)}`);
  }
  buf[at] = CODEC_VERSION;
  buf[at + 1] = kind;
  view.setUint32(at + 2, e.shard, true);
  view.setUint32(at + 6, e.sequence % U32, true);
  view.setUint32(at + 10, Math.floor(e.sequence / U32), true);
  view.setUint32(at + 14, e.epoch, true);
  view.setUint32(at + 18, e.time % U32, true);
  view.setUint32(at + 22, Math.floor(e.time / U32), true);
  if (e.amountMinor < I64_MIN || e.amountMinor > I64_MAX) {
    throw new RangeError(`journal-codec: amountMinor ${e.amountMinor} outside i64`);
  }
  view.setBigInt64(at + 26, e.amountMinor, true);
  return at + BODY_FIXED_BYTES;
}

function describe(e: JournalEntry): string {
  const { kind, shard, epoch, sequence, time } = e;
  return JSON.stringify({ kind, shard, epoch, sequence, time, amount: String(e.amountMinor) });
}

/** Writes a length-prefixed UTF-8 string; the caller has ensured 3 bytes per code unit. */
function writeString(buf: Buffer, at: number, s: string, long: boolean): number {
  const prefix = long ? 4 : 2;
  const p = at + prefix;
  let n = 0;
  const len = s.length;
  if (len <= 32) {
    // Short ASCII strings (ids, currency codes) are the common case; a JS loop beats a
    // native call for them. Anything else takes the native path below.
    for (; n < len; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      buf[p + n] = c;
    }
  }
  if (n < len) {
    invariant(isWellFormed(s), 'string is not well-formed UTF-16 (lone surrogate)');
    n = buf.write(s, p, 'utf8');
  }
  if (n > (long ? LONG_STRING_MAX : SHORT_STRING_MAX)) {
    throw new RangeError(`journal-codec: a string of ${n} UTF-8 bytes is too long`);
  }
  if (long) buf.writeUInt32LE(n, at);
  else buf.writeUInt16LE(n, at);
  return p + n;
}

/*
 * Decoding. `measure` walks the six length prefixes with bounds checks (a truncated or garbage
 * buffer yields a DecodeError, never an exception) and notes where each string lies; the
 * strings are made only after the record's hash has been checked.
 */
const STRING_COUNT = 6;
/** Where the strings of the record being decoded lie: [start0, end0, start1, end1, ...]. */
const spans = new Float64Array(2 * STRING_COUNT);

/** Offset just past the strings starting at `at`, or -1 when they do not fit in `limit`. */
function measure(buf: Buffer, at: number, limit: number): number {
  let pos = at;
  for (let k = 0; k < STRING_COUNT; k++) {
    const long = k === STRING_COUNT - 1;
    const prefix = long ? 4 : 2;
    if (pos + prefix > limit) return -1;
    const n = long ? buf.readUInt32LE(pos) : (buf[pos] ?? 0) | ((buf[pos + 1] ?? 0) << 8);
    const from = pos + prefix;
    if (n > LONG_STRING_MAX || from + n > limit) return -1;
    spans[2 * k] = from;
    spans[2 * k + 1] = from + n;
    pos = from + n;
  }
  return pos;
}

/**
 * Recently decoded short strings per field, so a journal's repeated tenants, accounts,
 * currencies and details come back as one shared string each: no allocation, and the replay's
 * Map lookups find their hash already computed. Each field but the transaction id keeps a
 * direct-mapped cache keyed by a hash of the bytes; a hit is always confirmed byte by byte, so
 * a collision only costs a decode.
 */
class FieldCache {
  /** each slot's string, its byte length (-1: empty) and its bytes (`bytesMax` per slot) */
  readonly values: string[];
  readonly lengths: Int32Array;
  readonly bytes: DataView;

  constructor(
    readonly slots: number,
    readonly bytesMax: number,
  ) {
    this.values = new Array<string>(slots).fill('');
    this.lengths = new Int32Array(slots).fill(-1);
    this.bytes = new DataView(new ArrayBuffer(Math.max(1, slots * bytesMax)));
  }
}

/** Per field (tenant, id, debit, credit, currency, detail): slots, and bytes a string may have. */
const fieldCaches = [[256, 48], [0, 0], [2048, 48], [2048, 48], [64, 16], [256, 96]]
  .map(([slots, bytesMax]) => new FieldCache(slots ?? 0, bytesMax ?? 0));

function fieldString(buf: Buffer, view: DataView, k: number): string {
  const from = spans[2 * k] as number;
  const to = spans[2 * k + 1] as number;
  const n = to - from;
  const cache = fieldCaches[k] as FieldCache;
  if (n > cache.bytesMax || n === 0) return readUtf8(buf, from, to);
  const slot = bytesHash(view, from, n) & (cache.slots - 1);
  const at = slot * cache.bytesMax;
  if (cache.lengths[slot] === n && sameBytes(cache.bytes, at, view, from, n)) {
    return cache.values[slot] as string;
  }
  // Decoding is a function of the bytes (invalid UTF-8 included), so equal bytes, equal string.
  const fresh = readUtf8(buf, from, to);
  cache.values[slot] = fresh;
  cache.lengths[slot] = n;
  copyBytes(cache.bytes, at, view, from, n);
  return fresh;
}

/*
 * Byte runs compared, copied and hashed four bytes at a time through DataViews: several times
 * faster than indexing a Buffer byte by byte (measured on the auditor's hot path).
 */
function sameBytes(a: DataView, aAt: number, b: DataView, bAt: number, n: number): boolean {
  let i = 0;
  for (; i + 4 <= n; i += 4) if (a.getInt32(aAt + i) !== b.getInt32(bAt + i)) return false;
  for (; i < n; i++) if (a.getUint8(aAt + i) !== b.getUint8(bAt + i)) return false;
  return true;
}

function copyBytes(to: DataView, toAt: number, from: DataView, fromAt: number, n: number): void {
  let i = 0;
  for (; i + 4 <= n; i += 4) to.setInt32(toAt + i, from.getInt32(fromAt + i));
  for (; i < n; i++) to.setUint8(toAt + i, from.getUint8(fromAt + i));
}

/**
 * The slot hash of n bytes: all of them up to 8, else the first, middle and last four (ids that
 * differ anywhere differ there in practice; a collision only costs a decode).
 */
function bytesHash(view: DataView, from: number, n: number): number {
  let h = Math.imul(n, 0x01000193);
  if (n >= 8) {
    h = Math.imul(h ^ view.getInt32(from), 0x01000193);
    h = Math.imul(h ^ view.getInt32(from + ((n >>> 1) & ~3)), 0x01000193);
    h = Math.imul(h ^ view.getInt32(from + n - 4), 0x01000193);
  } else {
    for (let i = 0; i < n; i++) h = Math.imul(h ^ view.getUint8(from + i), 0x01000193);
  }
  return h ^ (h >>> 15);
}

function isAscii(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if ((buf[i] ?? 0x80) >= 0x80) return false;
  return true;
}

function readUtf8(buf: Buffer, from: number, to: number): string {
  if (from === to) return '';
  if (to - from <= 8 && isAscii(buf, from, to)) return shortAscii(buf, from, to - from);
  return buf.toString('utf8', from, to);
}

const char = String.fromCharCode;

/**
 * 1 to 8 ASCII bytes as a string. One fromCharCode call with a fixed argument count makes one
 * string; a `+=` loop makes one per byte, and a native toString call costs ~4x more at this
 * size (ids such as `t123456`, decoded once per entry by the auditor).
 */
function shortAscii(b: Buffer, p: number, n: number): string {
  const b0 = b[p] ?? 0;
  const b1 = b[p + 1] ?? 0;
  const b2 = b[p + 2] ?? 0;
  const b3 = b[p + 3] ?? 0;
  if (n <= 4) {
    return n === 1 ? char(b0) : n === 2 ? char(b0, b1) : n === 3 ? char(b0, b1, b2)
      : char(b0, b1, b2, b3);
  }
  const b4 = b[p + 4] ?? 0;
  const b5 = b[p + 5] ?? 0;
  const b6 = b[p + 6] ?? 0;
  return n === 5 ? char(b0, b1, b2, b3, b4) : n === 6 ? char(b0, b1, b2, b3, b4, b5)
    : n === 7 ? char(b0, b1, b2, b3, b4, b5, b6) : char(b0, b1, b2, b3, b4, b5, b6, b[p + 7] ?? 0);
}

function readSafe(view: DataView, at: number): number {
  return view.getUint32(at + 4, true) * U32 + view.getUint32(at, true);
}

function checkFixed(buf: Buffer, view: DataView, b: number): DecodeError | 'ok' {
  if (buf[b] !== CODEC_VERSION) return 'bad_version';
  if ((buf[b + 1] ?? 0xff) >= ENTRY_KINDS.length) return 'bad_kind';
  if (view.getUint32(b + 10, true) > HIGH_MAX || view.getUint32(b + 22, true) > HIGH_MAX) {
    return 'bad_field';
  }
  return 'ok';
}

/** A verified record. prevHash and hash are views into the decoded buffer, made on demand. */
export class DecodedRecord {
  readonly ok = true;
  constructor(
    readonly entry: JournalEntry,
    /** offset just past the record */
    readonly end: number,
    /** the record's hash in latin1 form (see hashKey) */
    readonly hashKey: string,
    private readonly buf: Buffer,
    private readonly offset: number,
  ) {}

  get prevHash(): Uint8Array {
    return this.buf.subarray(this.offset, this.offset + HASH_BYTES);
  }

  get hash(): Uint8Array {
    return this.buf.subarray(this.end - HASH_BYTES, this.end);
  }

  /** Whether this record's prevHash equals `key` (latin1 form): the chain link. */
  follows(key: string): boolean {
    return this.buf.toString('latin1', this.offset, this.offset + HASH_BYTES) === key;
  }
}

export interface DecodeFailure {
  ok: false;
  error: DecodeError;
  offset: number;
}

// One DataView per buffer, not per record: decoding walks one large buffer record by record.
let lastBuf: Buffer | undefined;
let lastView: DataView = new DataView(new ArrayBuffer(0));

/**
 * Decode and verify one record at `offset`. Checks bounds, version, fields and the record's
 * own hash; the chain link (prevHash equals the previous hash) is the caller's (`follows`).
 */
export function decodeEntry(buf: Buffer, offset: number): DecodedRecord | DecodeFailure {
  const bodyEnd = locate(buf, offset, buf.length);
  if (typeof bodyEnd !== 'number') return { ok: false, error: bodyEnd, offset };
  const view = lastView;
  const b = offset + HASH_BYTES;
  const end = bodyEnd + HASH_BYTES;
  const key = sha256Binary(new Uint8Array(buf.buffer, buf.byteOffset + offset, bodyEnd - offset));
  if (!hashEquals(buf, bodyEnd, key)) return { ok: false, error: 'bad_hash', offset };
  const entry: JournalEntry = {
    shard: view.getUint32(b + 2, true),
    sequence: readSafe(view, b + 6),
    epoch: view.getUint32(b + 14, true),
    kind: ENTRY_KINDS[buf[b + 1] ?? 0] ?? 'reject',
    tenant: fieldString(buf, view, 0),
    id: fieldString(buf, view, 1),
    debitAccountId: fieldString(buf, view, 2),
    creditAccountId: fieldString(buf, view, 3),
    amountMinor: view.getBigInt64(b + 26, true),
    currencyCode: fieldString(buf, view, 4),
    time: readSafe(view, b + 18),
    detail: fieldString(buf, view, 5),
  };
  return new DecodedRecord(entry, end, key, buf, offset);
}

/**
 * The end of the body of the record at `offset` (where its stored hash starts), checking that
 * the record (stored hash included) ends by `limit`, version and fixed fields; leaves `spans`
 * and `lastView` set.
 */
function locate(buf: Buffer, offset: number, limit: number): number | DecodeError {
  const b = offset + HASH_BYTES;
  if (!(offset >= 0) || !(limit <= buf.length) || b + BODY_FIXED_BYTES > limit) {
    return 'truncated';
  }
  if (buf !== lastBuf) {
    lastBuf = buf;
    lastView = viewOf(buf);
  }
  const fixed = checkFixed(buf, lastView, b);
  if (fixed !== 'ok') return fixed;
  const bodyEnd = measure(buf, b + BODY_FIXED_BYTES, limit);
  if (bodyEnd === -1 || bodyEnd + HASH_BYTES > limit) return 'truncated';
  return bodyEnd;
}

/** A blank entry for RecordScanner.read to fill; every pooled entry gets this one shape. */
export function blankEntry(): JournalEntry {
  return { shard: 0, sequence: 0, epoch: 0, kind: 'reject', tenant: '', id: '',
    debitAccountId: '', creditAccountId: '', amountMinor: 0n, currencyCode: '', time: 0,
    detail: '' };
}

const AMOUNT_SLOTS = 1024;

/**
 * The auditor's decoder. read() parses one record into the caller's entry object (reused: it
 * allocates only new strings and the amount) and hashes the stored bytes prevHash ‖ body, but
 * unlike decodeEntry it does not judge the stored hash: the auditor compares, and names both
 * hashes when they differ. Bounds, version and fixed fields are checked as in decodeEntry.
 */
export class RecordScanner {
  /** after a successful read(): offset of the stored hash (the end of the body) */
  hashAt = 0;
  /** offset just past the record */
  end = 0;
  /** SHA-256 of the stored bytes prevHash ‖ body, latin1 form (see hashKey) */
  key = '';
  /**
   * Recent amounts, direct-mapped by their low bits: a repeated amount comes back as the same
   * bigint instead of a new allocation. Slot s holds the i64 (low, high) and its value.
   */
  private readonly amountLow = new Int32Array(AMOUNT_SLOTS);
  private readonly amountHigh = new Int32Array(AMOUNT_SLOTS);
  private readonly amountValue = new Array<bigint>(AMOUNT_SLOTS).fill(0n);

  /**
   * Reads the record at `offset`, which must end by `limit`, into `into`; null, or why the bytes
   * there are not a record.
   */
  read(buf: Buffer, offset: number, limit: number, into: JournalEntry): DecodeError | null {
    const bodyEnd = locate(buf, offset, limit);
    if (typeof bodyEnd !== 'number') return bodyEnd;
    const view = lastView;
    const b = offset + HASH_BYTES;
    this.key = sha256Binary(new Uint8Array(buf.buffer, buf.byteOffset + offset, bodyEnd - offset));
    this.hashAt = bodyEnd;
    this.end = bodyEnd + HASH_BYTES;
    into.shard = view.getUint32(b + 2, true);
    into.sequence = readSafe(view, b + 6);
    into.epoch = view.getUint32(b + 14, true);
    into.kind = ENTRY_KINDS[buf[b + 1] ?? 0] ?? 'reject';
    into.tenant = fieldString(buf, view, 0);
    into.id = fieldString(buf, view, 1);
    into.debitAccountId = fieldString(buf, view, 2);
    into.creditAccountId = fieldString(buf, view, 3);
    into.amountMinor = this.amount(view, b + 26);
    into.currencyCode = fieldString(buf, view, 4);
    into.time = readSafe(view, b + 18);
    into.detail = fieldString(buf, view, 5);
    return null;
  }

  private amount(view: DataView, at: number): bigint {
    const low = view.getInt32(at, true);
    const high = view.getInt32(at + 4, true);
    const slot = low & (AMOUNT_SLOTS - 1);
    if (this.amountLow[slot] === low && this.amountHigh[slot] === high) {
      return this.amountValue[slot] as bigint;
    }
    const value = view.getBigInt64(at, true);
    this.amountLow[slot] = low;
    this.amountHigh[slot] = high;
    this.amountValue[slot] = value;
    return value;
  }
}

/** Whether buf[at, at + 32) holds the hash `key` (latin1 form): compares without a copy. */
export function hashEquals(buf: Uint8Array, at: number, key: string): boolean {
  if (key.length !== HASH_BYTES) return false;
  for (let i = 0; i < HASH_BYTES; i++) if (key.charCodeAt(i) !== buf[at + i]) return false;
  return true;
}

const scratch = new EntryEncoder(1024);

/** SHA-256(prevHash ‖ body(entry)): the chain hash of `entry` after `prevHash`. */
export function entryHash(prevHash: Uint8Array, entry: JournalEntry): Uint8Array {
  scratch.reset();
  return fromBinary(scratch.appendOne(entry, toBinary(prevHash)));
}

/** The encoded record (prevHash ‖ body ‖ hash) of one entry, as a fresh buffer. */
export function encodeEntry(prevHash: Uint8Array, entry: JournalEntry): Buffer {
  scratch.reset();
  scratch.appendOne(entry, toBinary(prevHash));
  return Buffer.from(scratch.bytes());
}

/** Equal bytes, for comparing hashes. */
export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Latin1 key of a 32-byte hash, for fast repeated comparisons (see sha256Binary). */
export const hashKey = toBinary;
