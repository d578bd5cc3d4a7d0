// Load generator helpers for WebSocket frames (bench/load-client.ts): requests made once by
// msgpackr and patched per send, replies read for their rid and error codes without decoding
// them. The pod's own codecs are in protocol/; these only serve the measurement.

import { Packr } from 'msgpackr';
import { keyBytes } from '../protocol/batch-frame.js';

const ERROR_KEY = keyBytes('error');
const CODE_KEY = keyBytes('code');
const RID_PLACEHOLDER = 0x7fffffff; // msgpack uint32: 0xce and four bytes, patched per frame
const ID_DIGITS = 10; // base36 counter digits of a payment id: unique up to 36^10 payments

/**
 * Request frames of one shape, made once by msgpackr (as the SDK makes them) with fixed-width
 * ids; each send copies the bytes and writes a fresh rid and fresh ids in place.
 */
export class FrameTemplate {
  private readonly bytes: Buffer;
  private readonly ridAt: number;
  private readonly idAt: number[] = [];
  private n = 0;

  constructor(tag: string, accounts: number, size: number) {
    const item = (i: number) => ({ id: tag + '0'.repeat(ID_DIGITS), fromAccountId: 'fund',
      toAccountId: `a${i % accounts}`, amountMinor: '1', currencyCode: 'USD' });
    const frame = size === 1
      ? { ...item(0), op: 'transfer', rid: RID_PLACEHOLDER }
      : { atomic: false, transactions: Array.from({ length: size }, (_, i) => item(i)),
        op: 'transferBatch', rid: RID_PLACEHOLDER };
    this.bytes = Buffer.from(new Packr({ useRecords: false }).pack(frame));
    this.ridAt = this.bytes.lastIndexOf(Buffer.of(0xce, 0x7f, 0xff, 0xff, 0xff));
    const id = Buffer.from(tag + '0'.repeat(ID_DIGITS), 'latin1');
    for (let at = this.bytes.indexOf(id); at >= 0; at = this.bytes.indexOf(id, at + 1)) {
      this.idAt.push(at + tag.length);
    }
    if (this.ridAt < 0 || this.idAt.length !== size) throw new Error('frame template: no slots');
  }

  /** A new frame: its own bytes (the socket may hold them until written). */
  frame(rid: number): Buffer {
    const out = Buffer.allocUnsafe(this.bytes.length);
    this.bytes.copy(out);
    out.writeUInt32BE(rid, this.ridAt + 1);
    for (const at of this.idAt) {
      let v = this.n++;
      for (let d = ID_DIGITS - 1; d >= 0; d--, v = Math.floor(v / 36)) {
        const digit = v % 36;
        out[at + d] = digit < 10 ? 0x30 + digit : 0x57 + digit;
      }
    }
    return out;
  }
}

/** The error codes a reply names (its own, or its items'), read straight from the bytes. */
export function codesInFrame(data: Buffer): string[] | null {
  let codes: string[] | null = null;
  for (let at = data.indexOf(ERROR_KEY); at >= 0; at = data.indexOf(ERROR_KEY, at + 1)) {
    const key = data.indexOf(CODE_KEY, at + ERROR_KEY.length);
    if (key < 0) break;
    const head = data[key + CODE_KEY.length] ?? 0; // a fixstr: codes are short ASCII
    const from = key + CODE_KEY.length + 1;
    (codes ??= []).push(data.toString('latin1', from, from + (head & 0x1f)));
  }
  return codes;
}

/** The reply's rid and ok flag (the first two keys of every reply), or null. */
export function replyHead(data: Buffer): { rid: number; ok: boolean } | null {
  // a map (fixmap, map16 or map32: msgpackr writes either), fixstr 'rid', then a positive
  // int (fixint, uint8/16/32)
  const m = data[0] ?? 0;
  const k = (m & 0xf0) === 0x80 ? 1 : m === 0xde ? 3 : m === 0xdf ? 5 : -1;
  if (k < 0 || data[k] !== 0xa3 || data.toString('latin1', k + 1, k + 4) !== 'rid') return null;
  const t = data[k + 4] ?? 0;
  const from = k + 5;
  const width = t < 0x80 ? 0 : t === 0xcc ? 1 : t === 0xcd ? 2 : t === 0xce ? 4 : -1;
  if (width < 0) return null;
  const rid = width === 0 ? t : data.readUIntBE(from, width);
  const at = from + width;
  if (data[at] !== 0xa2 || data.toString('latin1', at + 1, at + 3) !== 'ok') return null;
  return { rid, ok: data[at + 3] === 0xc3 };
}
