// The WebSocket reply to a transferBatch, written straight to msgpack bytes. Same value as
// msgpack of frames.replyValue (same keys, same order, same JSON-safe values); never used for
// anything else, and it declines (returns null) any outcome that is not a batch of transfers.
//
// Why: rendering 8190 results to objects and then packing them with msgpackr's generic map
// writer cost 1-2.5 us per result on the gateway thread, more than the shard spent applying
// them. Here each key is a constant byte string and each value is written once, in place.

import type { ErrorRecord } from './errors.js';
import { formatAmount } from './money.js';
import type { Outcome, TransactionView } from './types.js';
import { isoTime } from './views.js';

type Rid = number | string;

/** A short ASCII key as a msgpack fixstr. */
export function keyBytes(key: string): Uint8Array {
  return Uint8Array.from([0xa0 | key.length, ...Buffer.from(key, 'latin1')]);
}

const K = {
  rid: keyBytes('rid'), ok: keyBytes('ok'), result: keyBytes('result'),
  results: keyBytes('results'), error: keyBytes('error'), code: keyBytes('code'),
  message: keyBytes('message'), retryable: keyBytes('retryable'), id: keyBytes('id'),
  status: keyBytes('status'), fromAccountId: keyBytes('fromAccountId'),
  toAccountId: keyBytes('toAccountId'), amount: keyBytes('amount'),
  amountMinor: keyBytes('amountMinor'), postedAmount: keyBytes('postedAmount'),
  postedAmountMinor: keyBytes('postedAmountMinor'), currencyCode: keyBytes('currencyCode'),
  description: keyBytes('description'), paymentTypeId: keyBytes('paymentTypeId'),
  createdAt: keyBytes('createdAt'), sequence: keyBytes('sequence'),
  expiresAt: keyBytes('expiresAt'),
};

const NIL = 0xc0;
const FALSE = 0xc2;
const TRUE = 0xc3;

/** One growing buffer per thread, reused: the bytes returned are valid until the next call. */
class Writer {
  buf = Buffer.allocUnsafe(256 * 1024);
  at = 0;

  ensure(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(next, 0, 0, this.at);
    this.buf = next;
  }

  byte(b: number): void {
    this.ensure(1);
    this.buf[this.at++] = b;
  }

  /** A JS loop: keys are a few bytes, where a native copy call costs more than the copy. */
  raw(bytes: Uint8Array): void {
    const n = bytes.length;
    this.ensure(n);
    const buf = this.buf;
    const at = this.at;
    for (let i = 0; i < n; i++) buf[at + i] = bytes[i] as number;
    this.at = at + n;
  }

  /** A map or array header with room for up to 2^32 - 1 items. */
  header(fix: number, b16: number, n: number): void {
    this.ensure(5);
    const buf = this.buf;
    if (n < 16) {
      buf[this.at++] = fix | n;
    } else if (n < 0x10000) {
      buf[this.at] = b16;
      buf.writeUInt16BE(n, this.at + 1);
      this.at += 3;
    } else {
      buf[this.at] = b16 + 1;
      buf.writeUInt32BE(n, this.at + 1);
      this.at += 5;
    }
  }

  map(n: number): void {
    this.header(0x80, 0xde, n);
  }

  array(n: number): void {
    this.header(0x90, 0xdc, n);
  }

  str(s: string): void {
    const len = s.length;
    this.ensure(5 + 3 * len);
    const buf = this.buf;
    const head = len < 32 ? 1 : len < 0x100 ? 2 : len < 0x10000 ? 3 : 5;
    const p = this.at + head;
    let n = 0;
    for (; n < len; n++) {
      const c = s.charCodeAt(n);
      if (c >= 0x80) break;
      buf[p + n] = c;
    }
    if (n < len) return this.strUtf8(s);
    this.strHeader(len, head);
    this.at = p + len;
  }

  private strUtf8(s: string): void {
    const n = Buffer.byteLength(s, 'utf8');
    const head = n < 32 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
    this.ensure(head + n);
    this.strHeader(n, head);
    this.buf.write(s, this.at + head, 'utf8');
    this.at += head + n;
  }

  private strHeader(n: number, head: number): void {
    const buf = this.buf;
    const at = this.at;
    if (head === 1) buf[at] = 0xa0 | n;
    else if (head === 2) {
      buf[at] = 0xd9;
      buf[at + 1] = n;
    } else if (head === 3) {
      buf[at] = 0xda;
      buf.writeUInt16BE(n, at + 1);
    } else {
      buf[at] = 0xdb;
      buf.writeUInt32BE(n, at + 1);
    }
  }

  /** A safe integer, as msgpackr writes one: int forms up to 32 bits, else float64. */
  int(v: number): void {
    this.ensure(9);
    const buf = this.buf;
    const at = this.at;
    if (v >= 0 && v < 0x80) {
      buf[at] = v;
      this.at += 1;
    } else if (v >= 0 && v <= 0xffffffff) {
      buf[at] = 0xce;
      buf.writeUInt32BE(v, at + 1);
      this.at += 5;
    } else if (v < 0 && v >= -0x80000000) {
      buf[at] = 0xd2;
      buf.writeInt32BE(v, at + 1);
      this.at += 5;
    } else {
      buf[at] = 0xcb;
      buf.writeDoubleBE(v, at + 1);
      this.at += 9;
    }
  }
}

const w = new Writer();

/**
 * A key and the string after it, for fields whose value a whole batch usually shares (status,
 * currency, creation time): the pair's bytes are kept from the last time and copied, not
 * encoded again. Any value is right: a new one is encoded (and kept) the general way.
 */
class SharedPair {
  private last: string | null = null;
  private bytes = new Uint8Array(0);

  constructor(private readonly key: Uint8Array) {}

  write(value: string): void {
    if (value === this.last) return w.raw(this.bytes);
    const at = w.at;
    w.raw(this.key);
    w.str(value);
    this.last = value;
    this.bytes = new Uint8Array(w.buf.subarray(at, w.at)); // a copy (Buffer#slice is a view)
  }
}

const statusPair = new SharedPair(K.status);
const currencyPair = new SharedPair(K.currencyCode);
const createdAtPair = new SharedPair(K.createdAt);

function writeError(e: ErrorRecord): void {
  w.map(1);
  w.raw(K.error);
  w.map(3);
  w.raw(K.code);
  w.str(e.code);
  w.raw(K.message);
  w.str(e.message);
  w.raw(K.retryable);
  w.byte(e.retryable ? TRUE : FALSE);
}

/** renderTransaction, written: see views.ts for which keys appear when. */
function writeTransaction(t: TransactionView): void {
  const partly = t.status === 'posted' && t.postedAmountMinor !== t.amountMinor;
  const keys = 9 + (partly ? 2 : 0) + (t.description !== null ? 1 : 0) +
    (t.paymentTypeId !== null ? 1 : 0) + (t.expiresAt !== null ? 1 : 0);
  w.map(keys);
  w.raw(K.id);
  w.str(t.id);
  statusPair.write(t.status);
  w.raw(K.fromAccountId);
  w.str(t.fromAccountId);
  w.raw(K.toAccountId);
  w.str(t.toAccountId);
  w.raw(K.amount);
  w.str(formatAmount(t.amountMinor, t.currencyCode));
  w.raw(K.amountMinor);
  w.str(t.amountMinor.toString());
  if (partly) {
    w.raw(K.postedAmount);
    w.str(formatAmount(t.postedAmountMinor, t.currencyCode));
    w.raw(K.postedAmountMinor);
    w.str(t.postedAmountMinor.toString());
  }
  currencyPair.write(t.currencyCode);
  if (t.description !== null) {
    w.raw(K.description);
    w.str(t.description);
  }
  if (t.paymentTypeId !== null) {
    w.raw(K.paymentTypeId);
    w.str(t.paymentTypeId);
  }
  createdAtPair.write(isoTime(t.createdAt));
  w.raw(K.sequence);
  w.int(t.sequence);
  if (t.expiresAt !== null) {
    w.raw(K.expiresAt);
    w.str(isoTime(t.expiresAt));
  }
}

function isTransaction(value: unknown): value is TransactionView {
  const v = value as Partial<TransactionView>;
  return typeof v.id === 'string' && typeof v.status === 'string' &&
    typeof v.amountMinor === 'bigint' && typeof v.sequence === 'number';
}

/** The batch's results, or null when one of them is not a transaction or an error. */
function batchResults(outcome: Outcome): Outcome[] | null {
  if (!outcome.ok) return null;
  const results = (outcome.value as { results?: unknown }).results;
  if (!Array.isArray(results)) return null;
  for (const r of results as Outcome[]) if (r.ok && !isTransaction(r.value)) return null;
  return results as Outcome[];
}

/**
 * msgpack of `{rid, ok: true, result: {results: [...]}}` for a transferBatch outcome, as a
 * view into a buffer reused by the next call (send or copy it at once); null for any other
 * outcome (the caller packs those the general way).
 */
export function encodeBatchReply(rid: Rid | null, outcome: Outcome): Uint8Array | null {
  const results = batchResults(outcome);
  if (results === null) return null;
  w.at = 0;
  w.map(3);
  w.raw(K.rid);
  if (rid === null) w.byte(NIL);
  else if (typeof rid === 'number') w.int(rid);
  else w.str(rid);
  w.raw(K.ok);
  w.byte(TRUE);
  w.raw(K.result);
  w.map(1);
  w.raw(K.results);
  w.array(results.length);
  for (const r of results) {
    if (r.ok) writeTransaction(r.value as TransactionView);
    else writeError(r.error);
  }
  return w.buf.subarray(0, w.at);
}
