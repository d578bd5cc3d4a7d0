// PostgreSQL binary COPY codec: encodes journal rows into one reused growable buffer and decodes
// `COPY ... TO STDOUT (FORMAT binary)` split at any byte. Pure: no I/O, no per-row Buffer.

import { ENTRY_KINDS, HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';
import type { EntryKind } from '../protocol/types.js';
import { grownBuffer } from '../protocol/grow-buffer.js';

/*
 * Binary COPY layout (PostgreSQL docs, "COPY ... Binary Format"; all integers big-endian):
 *
 *   header   11 bytes "PGCOPY\n\377\r\n\0", int32 flags (0), int32 extension length (0)
 *   tuple    int16 field count, then per field: int32 byte length (-1: NULL) + the bytes
 *   trailer  int16 -1
 *
 * Field bytes are each type's binary send format: int2/int4/int8 big-endian two's complement,
 * text/varchar as UTF-8 bytes, bytea as raw bytes.
 */

export const COPY_SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');
const HEADER_BYTES = COPY_SIGNATURE.length + 8;
const U32 = 0x1_0000_0000;

/** The journal columns in COPY order; pg-schema's table and both directions follow this list. */
export const JOURNAL_COLUMNS = [
  'shard', 'sequence', 'epoch', 'kind', 'tenant', 'id', 'debit_account', 'credit_account',
  'amount_minor', 'currency', 'time_ms', 'detail', 'prev_hash', 'hash',
] as const;
export const JOURNAL_COLUMN_LIST = JOURNAL_COLUMNS.join(', ');

const KIND_CODES: ReadonlyMap<EntryKind, number> = new Map(ENTRY_KINDS.map((k, i) => [k, i]));

export class CopyDecodeError extends Error {
  readonly code = 'copy_decode';
  constructor(message: string) {
    super(`binary COPY: ${message}`);
    this.name = 'CopyDecodeError';
  }
}

/**
 * Writes binary COPY data into one Buffer that is reused across groups (begin() keeps the
 * memory) and grows by doubling. Callers call ensure() per row with an upper bound, so the
 * field writers themselves never check capacity.
 */
export class CopyBinaryEncoder {
  private buf: Buffer;
  private used = 0;

  constructor(initialBytes = 256 * 1024) {
    this.buf = Buffer.allocUnsafe(Math.max(initialBytes, 1024));
  }

  get length(): number {
    return this.used;
  }

  /** Start a new COPY stream: forget the previous content, write the header. */
  begin(): void {
    this.used = 0;
    this.ensure(HEADER_BYTES);
    COPY_SIGNATURE.copy(this.buf, 0);
    this.buf.writeInt32BE(0, COPY_SIGNATURE.length);
    this.buf.writeInt32BE(0, COPY_SIGNATURE.length + 4);
    this.used = HEADER_BYTES;
  }

  /** Write the trailer; returns a view of the whole stream, valid until the next begin(). */
  finish(): Buffer {
    this.ensure(2);
    this.buf.writeInt16BE(-1, this.used);
    this.used += 2;
    return this.buf.subarray(0, this.used);
  }

  /** Make room for `bytes` more bytes. */
  ensure(bytes: number): void {
    this.buf = grownBuffer(this.buf, this.used, this.used + bytes);
  }

  row(fieldCount: number): void {
    this.buf.writeInt16BE(fieldCount, this.used);
    this.used += 2;
  }

  int2(value: number): void {
    this.buf.writeInt32BE(2, this.used);
    this.buf.writeInt16BE(value, this.used + 4);
    this.used += 6;
  }

  int4(value: number): void {
    this.buf.writeInt32BE(4, this.used);
    this.buf.writeInt32BE(value, this.used + 4);
    this.used += 8;
  }

  /** A safe integer as int8 (no bigint allocation on the hot path). */
  int8(value: number): void {
    const at = this.used;
    this.buf.writeInt32BE(8, at);
    const high = Math.floor(value / U32);
    this.buf.writeInt32BE(high | 0, at + 4);
    this.buf.writeUInt32BE(value - high * U32, at + 8);
    this.used += 12;
  }

  int8Big(value: bigint): void {
    this.buf.writeInt32BE(8, this.used);
    this.buf.writeBigInt64BE(value, this.used + 4);
    this.used += 12;
  }

  /** UTF-8 text; the caller's ensure() allowed 4 + 3 bytes per UTF-16 code unit. */
  text(s: string): void {
    const p = this.used + 4;
    const buf = this.buf;
    const len = s.length;
    let n = 0;
    if (len <= 32) {
      // Short ASCII (ids, codes) is the common case: a JS loop beats a native call here.
      for (; n < len; n++) {
        const c = s.charCodeAt(n);
        if (c >= 0x80) break;
        buf[p + n] = c;
      }
    }
    if (n < len) n = buf.write(s, p, 'utf8');
    buf.writeInt32BE(n, this.used);
    this.used = p + n;
  }

  /** bytea from a latin1 string whose char codes are the bytes (journal-codec hash keys). */
  byteaLatin1(bytes: string): void {
    const n = bytes.length;
    this.buf.writeInt32BE(n, this.used);
    this.buf.write(bytes, this.used + 4, n, 'latin1');
    this.used += 4 + n;
  }
}

/** Upper bound of one journal row's encoded size, for CopyBinaryEncoder.ensure(). */
export function journalRowBound(e: JournalEntry): number {
  const chars =
    e.tenant.length + e.id.length + e.debitAccountId.length + e.creditAccountId.length +
    e.currencyCode.length + e.detail.length;
  // field count + 14 length words + fixed-size values + two hashes + 3 bytes per code unit
  return 2 + 14 * 4 + (4 + 8 + 8 + 2 + 8 + 8) + 2 * HASH_BYTES + 3 * chars;
}

/**
 * One journal row in JOURNAL_COLUMNS order. `prevKey` and `hashKey` are 32-byte hashes in
 * latin1 form (journal-codec's hashKey). Throws RangeError on an unknown kind.
 */
export function writeJournalRow(
  enc: CopyBinaryEncoder,
  e: JournalEntry,
  prevKey: string,
  hashKey: string,
): void {
  const kind = KIND_CODES.get(e.kind);
  if (kind === undefined) throw new RangeError(`journal row: unknown kind ${String(e.kind)}`);
  enc.ensure(journalRowBound(e));
  enc.row(JOURNAL_COLUMNS.length);
  enc.int4(e.shard);
  enc.int8(e.sequence);
  enc.int8(e.epoch);
  enc.int2(kind);
  enc.text(e.tenant);
  enc.text(e.id);
  enc.text(e.debitAccountId);
  enc.text(e.creditAccountId);
  enc.int8Big(e.amountMinor);
  enc.text(e.currencyCode);
  enc.int8(e.time);
  enc.text(e.detail);
  enc.byteaLatin1(prevKey);
  enc.byteaLatin1(hashKey);
}

/**
 * One decoded tuple: field offsets into a buffer that is only valid during the onRow call
 * (the decoder reuses the object and its arrays for every row).
 */
export class CopyRow {
  buf: Buffer = Buffer.alloc(0);
  /** a view of `buf`, for reading fields without a Buffer method call each */
  view: DataView = new DataView(new ArrayBuffer(0));
  count = 0;
  readonly starts: Int32Array;
  /** byte length per field, -1 for NULL */
  readonly lengths: Int32Array;

  constructor(maxFields: number) {
    this.starts = new Int32Array(maxFields);
    this.lengths = new Int32Array(maxFields);
  }

  private at(i: number, size: number): number {
    const len = this.lengths[i];
    if (i >= this.count || len !== size) {
      throw new CopyDecodeError(`field ${i} has ${String(len)} bytes, expected ${size}`);
    }
    return this.starts[i] as number;
  }

  int2(i: number): number {
    return this.buf.readInt16BE(this.at(i, 2));
  }

  int4(i: number): number {
    return this.buf.readInt32BE(this.at(i, 4));
  }

  /** int8 as a number; throws beyond the safe integer range. */
  int8(i: number): number {
    const at = this.at(i, 8);
    const value = this.buf.readInt32BE(at) * U32 + this.buf.readUInt32BE(at + 4);
    if (!Number.isSafeInteger(value)) throw new CopyDecodeError(`field ${i} is not a safe integer`);
    return value;
  }

  int8Big(i: number): bigint {
    return this.buf.readBigInt64BE(this.at(i, 8));
  }

  /** Text or bytea field as a string in `encoding`; NULL is an error (no column is nullable). */
  string(i: number, encoding: 'utf8' | 'latin1'): string {
    const len = this.lengths[i] ?? -1;
    if (i >= this.count || len < 0) throw new CopyDecodeError(`field ${i} is NULL or missing`);
    const start = this.starts[i] as number;
    return this.buf.toString(encoding, start, start + len);
  }
}

type DecoderState = 'header' | 'tuples' | 'done';
const NO_BYTES = Buffer.alloc(0);

/**
 * Incremental decoder: push() chunks as they arrive, cut anywhere; onRow fires once per
 * complete tuple. Only the unfinished tail of a chunk is kept (and copied once when the next
 * chunk arrives), so memory stays bounded by the largest row plus one chunk.
 */
export class CopyBinaryDecoder {
  private pending: Buffer = NO_BYTES;
  private state: DecoderState = 'header';
  private readonly row: CopyRow;
  rows = 0;

  constructor(
    private readonly maxFields: number,
    private readonly onRow: (row: CopyRow) => void,
  ) {
    this.row = new CopyRow(maxFields);
  }

  push(chunk: Buffer): void {
    this.pushRange(chunk, new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength), 0,
      chunk.length);
  }

  /**
   * push() of src[from, to), `view` viewing all of src: no Buffer is made for the range (the
   * auditor feeds CopyData bodies straight from socket chunks). Rows point into src, which the
   * decoder may keep (unfinished tail) until the next push: src must not be reused meanwhile.
   */
  pushRange(src: Buffer, view: DataView, from: number, to: number): void {
    let buf = src;
    let v = view;
    let at = from;
    let end = to;
    if (this.pending.length > 0) {
      buf = Buffer.concat([this.pending, src.subarray(from, to)]);
      v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      at = 0;
      end = buf.length;
    }
    if (this.state === 'header') {
      const header = readHeader(buf.subarray(at, end));
      if (header < 0) {
        this.pending = buf.subarray(at, end);
        return;
      }
      at += header;
      this.state = 'tuples';
    }
    while (this.state === 'tuples') {
      const next = this.readTuple(buf, v, at, end);
      if (next < 0) break;
      at = next;
    }
    if (this.state === 'done' && at < end) {
      throw new CopyDecodeError(`${end - at} bytes after the trailer`);
    }
    this.pending = at === end ? NO_BYTES : buf.subarray(at, end);
  }

  /** The stream ended: it must have ended exactly after the trailer. */
  end(): void {
    if (this.state !== 'done') {
      throw new CopyDecodeError(`stream ended in ${this.state} with ${this.pending.length} bytes`);
    }
  }

  /** Decodes one tuple or the trailer at `at` (bytes end at `end`); its end, or -1. */
  private readTuple(buf: Buffer, view: DataView, at: number, end: number): number {
    if (at + 2 > end) return -1;
    const count = view.getInt16(at);
    if (count === -1) {
      this.state = 'done';
      return at + 2;
    }
    if (count < 0 || count > this.maxFields) {
      throw new CopyDecodeError(`tuple with ${count} fields (at most ${this.maxFields})`);
    }
    const row = this.row;
    let p = at + 2;
    for (let i = 0; i < count; i++) {
      if (p + 4 > end) return -1;
      const len = view.getInt32(p);
      if (len < -1) throw new CopyDecodeError(`field length ${len}`);
      p += 4;
      row.starts[i] = p;
      row.lengths[i] = len;
      if (len > 0) p += len;
      if (p > end) return -1;
    }
    row.buf = buf;
    row.view = view;
    row.count = count;
    this.rows++;
    this.onRow(row);
    return p;
  }
}

/** End of the header, or -1 when more bytes are needed; throws on a wrong signature. */
function readHeader(buf: Buffer): number {
  const sigLength = COPY_SIGNATURE.length;
  const check = Math.min(buf.length, sigLength);
  if (buf.compare(COPY_SIGNATURE, 0, check, 0, check) !== 0) {
    throw new CopyDecodeError('bad signature');
  }
  if (buf.length < HEADER_BYTES) return -1;
  const extension = buf.readInt32BE(sigLength + 4);
  if (extension < 0) throw new CopyDecodeError(`header extension length ${extension}`);
  const end = HEADER_BYTES + extension;
  return end <= buf.length ? end : -1;
}

/** A decoded journal row: the entry and its stored hashes in latin1 form. */
export interface JournalRow {
  entry: JournalEntry;
  prevKey: string;
  hashKey: string;
}

/** Reads a row selected as JOURNAL_COLUMN_LIST. Throws CopyDecodeError on a malformed row. */
export function readJournalRow(row: CopyRow): JournalRow {
  const kindCode = row.int2(3);
  const kind = ENTRY_KINDS[kindCode];
  if (kind === undefined) throw new CopyDecodeError(`unknown kind code ${kindCode}`);
  const entry: JournalEntry = {
    shard: row.int4(0),
    sequence: row.int8(1),
    epoch: row.int8(2),
    kind,
    tenant: row.string(4, 'utf8'),
    id: row.string(5, 'utf8'),
    debitAccountId: row.string(6, 'utf8'),
    creditAccountId: row.string(7, 'utf8'),
    amountMinor: row.int8Big(8),
    currencyCode: row.string(9, 'utf8'),
    time: row.int8(10),
    detail: row.string(11, 'utf8'),
  };
  return { entry, prevKey: row.string(12, 'latin1'), hashKey: row.string(13, 'latin1') };
}
