// Binary codec for command batches crossing to a worker thread or another pod. Transfers (the
// hot path) are written field by field; any other command rides along as msgpack. Trusted
// peers only: never use it on client bytes (frames.ts does). Malformed bytes throw RangeError.
//
// Why not msgpack for everything: packing 8190 transfer records cost ~0.5 us each, more than
// applying them. Here a transfer is a few bytes of flags and lengths, its id inline, and the
// strings that repeat across a batch (tenant, accounts, currency, payment type) as indexes
// into one table per message, so the decoder makes each of them once.
//
// Layout, little-endian:
//   u8 version | u32 envelopes | u32 tableOffset | envelope* | u32 strings | (u16 len, utf8)*
//   envelope  = u8 tag | varint tenant | body
//   tag 1 transfer:      transfer
//   tag 2 transferBatch: u8 atomic | u32 n | transfer{n}
//   tag 0 other:         u32 len | msgpack command
//   transfer  = u8 flags | u16 len, utf8 id | varint from | varint to | i64 amount |
//               varint currency | [u16 len, utf8 description] | [varint paymentTypeId] |
//               [f64 timeoutSeconds]     (flags: pending, has description/type/timeout)

import { Packr, Unpackr } from 'msgpackr';
import { I64_MAX, I64_MIN } from './journal-codec.js';
import type { Command, Envelope, TransferCmd } from './types.js';

const VERSION = 1;
const HEADER_BYTES = 9;
const TAG_OTHER = 0;
const TAG_TRANSFER = 1;
const TAG_BATCH = 2;
const PENDING = 1;
const HAS_DESCRIPTION = 2;
const HAS_TYPE = 4;
const HAS_TIMEOUT = 8;
const STRING_MAX = 0xffff;

const packr = new Packr({ useRecords: true });
const unpackr = new Unpackr({ useRecords: true, int64AsType: 'bigint' });

/** A growing output buffer reused across messages (one message at a time per thread). */
class Writer {
  buf = Buffer.allocUnsafe(64 * 1024);
  view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  at = 0;
  readonly table = new Map<string, number>();
  readonly strings: string[] = [];

  reset(): void {
    this.at = HEADER_BYTES;
    this.table.clear();
    this.strings.length = 0;
  }

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
    this.view = new DataView(next.buffer, next.byteOffset, next.byteLength);
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.at++] = v;
  }

  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.at, v, true);
    this.at += 4;
  }

  varint(v: number): void {
    this.ensure(5);
    while (v >= 0x80) {
      this.buf[this.at++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    this.buf[this.at++] = v;
  }

  /** u16 byte length + UTF-8; ASCII in a JS loop (cheaper than a native call when short). */
  string(s: string): void {
    const len = s.length;
    this.ensure(2 + 3 * len);
    const p = this.at + 2;
    let n = 0;
    for (; n < len; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      this.buf[p + n] = c;
    }
    if (n < len) n = this.buf.write(s, p, 'utf8');
    if (n > STRING_MAX) throw new RangeError(`envelope-codec: a string of ${n} bytes`);
    this.view.setUint16(this.at, n, true);
    this.at = p + n;
  }

  ref(s: string): void {
    let i = this.table.get(s);
    if (i === undefined) {
      i = this.strings.length;
      this.table.set(s, i);
      this.strings.push(s);
    }
    this.varint(i);
  }
}

const writer = new Writer();

function fitsInline(cmd: TransferCmd): boolean {
  const t = cmd.timeoutSeconds;
  return typeof cmd.amountMinor === 'bigint' && cmd.amountMinor >= I64_MIN &&
    cmd.amountMinor <= I64_MAX && (t === null || typeof t === 'number');
}

function writeTransfer(w: Writer, cmd: TransferCmd): void {
  const flags = (cmd.pending ? PENDING : 0) | (cmd.description !== null ? HAS_DESCRIPTION : 0) |
    (cmd.paymentTypeId !== null ? HAS_TYPE : 0) | (cmd.timeoutSeconds !== null ? HAS_TIMEOUT : 0);
  w.u8(flags);
  w.string(cmd.id);
  w.ref(cmd.fromAccountId);
  w.ref(cmd.toAccountId);
  w.ensure(8);
  w.view.setBigInt64(w.at, cmd.amountMinor, true);
  w.at += 8;
  w.ref(cmd.currencyCode);
  if (cmd.description !== null) w.string(cmd.description);
  if (cmd.paymentTypeId !== null) w.ref(cmd.paymentTypeId);
  if (cmd.timeoutSeconds !== null) {
    w.ensure(8);
    w.view.setFloat64(w.at, cmd.timeoutSeconds, true);
    w.at += 8;
  }
}

function writeEnvelope(w: Writer, env: Envelope): void {
  const cmd = env.cmd;
  if (cmd.op === 'transfer' && fitsInline(cmd)) {
    w.u8(TAG_TRANSFER);
    w.ref(env.tenant);
    writeTransfer(w, cmd);
  } else if (cmd.op === 'transferBatch' && cmd.transactions.every(fitsInline)) {
    w.u8(TAG_BATCH);
    w.ref(env.tenant);
    w.u8(cmd.atomic ? 1 : 0);
    w.u32(cmd.transactions.length);
    for (const item of cmd.transactions) writeTransfer(w, item);
  } else {
    w.u8(TAG_OTHER);
    w.ref(env.tenant);
    const bytes = packr.pack(cmd);
    w.u32(bytes.length);
    w.ensure(bytes.length);
    w.buf.set(bytes, w.at);
    w.at += bytes.length;
  }
}

/** Bytes with their own exactly-sized ArrayBuffer, safe for postMessage's transfer list. */
export function encodeEnvelopes(items: readonly Envelope[]): Uint8Array<ArrayBuffer> {
  const w = writer;
  w.reset();
  for (const env of items) writeEnvelope(w, env);
  const tableOffset = w.at;
  w.u32(w.strings.length);
  for (const s of w.strings) w.string(s);
  const out = new Uint8Array(w.at);
  out.set(w.buf.subarray(0, w.at));
  out[0] = VERSION;
  const view = new DataView(out.buffer);
  view.setUint32(1, items.length, true);
  view.setUint32(5, tableOffset, true);
  return out;
}

/** Bounds-checked reads: garbage from a peer ends in a RangeError, never a wrong command. */
class Reader {
  at: number;
  readonly view: DataView;
  table: string[] = [];

  constructor(
    readonly buf: Buffer,
    at: number,
  ) {
    this.at = at;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  need(n: number): void {
    if (this.at + n > this.buf.length) throw new RangeError('envelope-codec: truncated');
  }

  u8(): number {
    this.need(1);
    return this.buf[this.at++] as number;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.at, true);
    this.at += 4;
    return v;
  }

  varint(): number {
    let v = 0;
    for (let shift = 0; shift < 35; shift += 7) {
      const b = this.u8();
      v += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) return v;
    }
    throw new RangeError('envelope-codec: varint too long');
  }

  string(): string {
    this.need(2);
    const n = this.view.getUint16(this.at, true);
    const p = this.at + 2;
    this.at = p;
    this.need(n);
    this.at = p + n;
    for (let i = p; i < p + n; i++) {
      if ((this.buf[i] as number) >= 0x80) return this.buf.toString('utf8', p, p + n);
    }
    return this.buf.toString('latin1', p, p + n);
  }

  ref(): string {
    const s = this.table[this.varint()];
    if (s === undefined) throw new RangeError('envelope-codec: string index out of range');
    return s;
  }

  f64(): number {
    this.need(8);
    const v = this.view.getFloat64(this.at, true);
    this.at += 8;
    return v;
  }

  i64(): bigint {
    this.need(8);
    const v = this.view.getBigInt64(this.at, true);
    this.at += 8;
    return v;
  }
}

function readTransfer(r: Reader): TransferCmd {
  const flags = r.u8();
  const id = r.string();
  const fromAccountId = r.ref();
  const toAccountId = r.ref();
  const amountMinor = r.i64();
  const currencyCode = r.ref();
  const description = flags & HAS_DESCRIPTION ? r.string() : null;
  const paymentTypeId = flags & HAS_TYPE ? r.ref() : null;
  const timeoutSeconds = flags & HAS_TIMEOUT ? r.f64() : null;
  return { op: 'transfer', id, fromAccountId, toAccountId, amountMinor, currencyCode,
    description, paymentTypeId, pending: (flags & PENDING) !== 0, timeoutSeconds };
}

function readEnvelope(r: Reader): Envelope {
  const tag = r.u8();
  const tenant = r.ref();
  if (tag === TAG_TRANSFER) return { tenant, cmd: readTransfer(r) };
  if (tag === TAG_BATCH) {
    const atomic = r.u8() === 1;
    const n = r.u32();
    r.need(n); // every transfer takes more than one byte: a bound before allocating
    const transactions = new Array<TransferCmd>(n);
    for (let i = 0; i < n; i++) transactions[i] = readTransfer(r);
    return { tenant, cmd: { op: 'transferBatch', atomic, transactions } };
  }
  if (tag !== TAG_OTHER) throw new RangeError(`envelope-codec: unknown tag ${tag}`);
  const len = r.u32();
  r.need(len);
  const cmd = unpackr.unpack(r.buf.subarray(r.at, r.at + len)) as Command;
  r.at += len;
  return { tenant, cmd };
}

/** Trusts its peer (another thread, or an authenticated pod); throws on malformed bytes. */
export function decodeEnvelopes(bytes: Uint8Array): Envelope[] {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length < HEADER_BYTES || buf[0] !== VERSION) {
    throw new RangeError('envelope-codec: not an envelope batch');
  }
  const r = new Reader(buf, 1);
  const count = r.u32();
  const tableOffset = r.u32();
  const bodyAt = r.at;
  if (tableOffset < bodyAt || tableOffset > buf.length) {
    throw new RangeError('envelope-codec: bad table offset');
  }
  r.at = tableOffset;
  const strings = r.u32();
  r.need(2 * strings);
  for (let i = 0; i < strings; i++) r.table.push(r.string());
  const end = r.at;
  r.at = bodyAt;
  r.need(count);
  const out = new Array<Envelope>(count);
  for (let i = 0; i < count; i++) out[i] = readEnvelope(r);
  if (r.at !== tableOffset || end !== buf.length) {
    throw new RangeError('envelope-codec: bytes left over');
  }
  return out;
}
