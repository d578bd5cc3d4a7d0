// Re-encoding COPY rows as journal-codec records: byte for byte what the encoder writes for the
// decoded row, for every row the encoder accepts, and refused (-1) for every other row.

import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { encodeEntry, hashKey } from '../protocol/journal-codec.js';
import { ENTRY_KINDS, HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';
import {
  CopyBinaryDecoder,
  CopyBinaryEncoder,
  JOURNAL_COLUMNS,
  readJournalRow,
  writeJournalRow,
  type CopyRow,
} from './pg-copy-binary.js';
import { copyRowRecord, rowRecordBytes } from './pg-row-record.js';

const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }),
  fc.constantFrom('{"description":null,"paymentTypeId":null,"timeoutSeconds":null}'));
const entryArb: fc.Arbitrary<JournalEntry> = fc.record({
  shard: fc.integer({ min: -2, max: 0x7fff_ffff }),
  sequence: fc.oneof(fc.integer({ min: -2, max: 1000 }),
    fc.integer({ min: 2 ** 53 - 3, max: Number.MAX_SAFE_INTEGER })),
  epoch: fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }),
    fc.integer({ min: 0xffff_ffff, max: 2 ** 40 })),
  kind: fc.constantFrom(...ENTRY_KINDS),
  tenant: text,
  id: text,
  debitAccountId: text,
  creditAccountId: text,
  amountMinor: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  currencyCode: fc.constantFrom('EUR', 'JPY', ''),
  time: fc.integer({ min: -1, max: Number.MAX_SAFE_INTEGER }),
  detail: fc.oneof(text, fc.string({ minLength: 250, maxLength: 400 })),
});
const hashArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hashKey(b));

function copyStream(e: JournalEntry, prevKey: string, storedKey: string): Buffer {
  const enc = new CopyBinaryEncoder(1024);
  enc.begin();
  writeJournalRow(enc, e, prevKey, storedKey);
  return Buffer.from(enc.finish());
}

/** The row of a one-row stream, re-encoded: the record bytes, or -1. */
function transcode(stream: Buffer): { row: CopyRow; record: Buffer | null } {
  let out: { row: CopyRow; record: Buffer | null } | null = null;
  const dec = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => {
    const buf = Buffer.alloc(Math.max(0, rowRecordBytes(row)) + 8);
    const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
    const end = copyRowRecord(row, row.view, buf, view, 4);
    out = { row, record: end < 0 ? null : buf.subarray(4, end) };
    if (end >= 0) expect(end - 4).toBe(rowRecordBytes(row));
  });
  dec.push(stream);
  dec.end();
  if (out === null) throw new Error('no row');
  return out;
}

/** What the general path makes of the row: the encoder's record for the decoded entry. */
function general(row: CopyRow): Buffer | null {
  try {
    const r = readJournalRow(row);
    return encodeEntry(Buffer.from(r.prevKey, 'latin1'), r.entry);
  } catch {
    return null; // a decode error or an entry the encoder refuses: the general path's business
  }
}

describe('COPY row to record', () => {
  test('equals the encoder byte for byte, and refuses exactly what the encoder refuses', () => {
    fc.assert(fc.property(entryArb, hashArb, hashArb, (e, prevKey, storedKey) => {
      const { row, record } = transcode(copyStream(e, prevKey, storedKey));
      const expected = general(row);
      if (expected === null) {
        expect(record).toBeNull();
        return;
      }
      expect(record).not.toBeNull();
      const body = expected.length - HASH_BYTES;
      expect(record?.subarray(0, body)).toEqual(expected.subarray(0, body));
      expect(record?.subarray(body)).toEqual(Buffer.from(storedKey, 'latin1'));
    }), { numRuns: 400 });
  });

  test('refuses text that is not valid UTF-8, which the decoder would have replaced', () => {
    const e: JournalEntry = { shard: 1, sequence: 2, epoch: 3, kind: 'post', tenant: 'tenant',
      id: 'id', debitAccountId: 'a', creditAccountId: 'b', amountMinor: 5n, currencyCode: 'EUR',
      time: 6, detail: 'x'.repeat(300) };
    const key = hashKey(new Uint8Array(32));
    const good = copyStream(e, key, key);
    expect(transcode(good).record).not.toBeNull();
    for (const [find, bad] of [['tenant', 'te\xffant'], ['x'.repeat(8), 'xxx\xc3xxxx']]) {
      const stream = Buffer.from(good);
      const at = stream.indexOf(find ?? '', 0, 'latin1');
      stream.write(bad ?? '', at, 'latin1');
      expect(transcode(stream).record).toBeNull();
    }
  });
});
