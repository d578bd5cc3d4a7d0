// The binary COPY codec without a server: journal rows survive encode → decode with the stream
// split at every byte, and malformed streams are refused with a CopyDecodeError.

import { describe, expect, test } from 'vitest';
import fc from 'fast-check';
import { hashKey } from '../protocol/journal-codec.js';
import { ENTRY_KINDS, type JournalEntry } from '../protocol/journal-entry.js';
import {
  CopyBinaryDecoder,
  CopyBinaryEncoder,
  CopyDecodeError,
  JOURNAL_COLUMNS,
  readJournalRow,
  writeJournalRow,
  type JournalRow,
} from './pg-copy-binary.js';

const entryArb: fc.Arbitrary<JournalEntry> = fc.record({
  shard: fc.integer({ min: 0, max: 0x7fff_ffff }),
  sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  epoch: fc.integer({ min: 0, max: 0xffff_ffff }),
  kind: fc.constantFrom(...ENTRY_KINDS),
  tenant: fc.string(),
  id: fc.string({ unit: 'grapheme', maxLength: 40 }),
  debitAccountId: fc.string(),
  creditAccountId: fc.string({ unit: 'binary-ascii' }),
  amountMinor: fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
  currencyCode: fc.constantFrom('EUR', 'JPY', ''),
  time: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  detail: fc.string({ unit: 'grapheme', maxLength: 80 }),
});

const hashArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => hashKey(b));
const rowArb = fc.record({ entry: entryArb, prevKey: hashArb, hashKey: hashArb });

function encode(rows: readonly JournalRow[]): Buffer {
  const enc = new CopyBinaryEncoder(1024);
  enc.begin();
  for (const r of rows) writeJournalRow(enc, r.entry, r.prevKey, r.hashKey);
  return Buffer.from(enc.finish());
}

function decode(chunks: readonly Buffer[]): JournalRow[] {
  const out: JournalRow[] = [];
  const dec = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => out.push(readJournalRow(row)));
  for (const c of chunks) dec.push(c);
  dec.end();
  return out;
}

describe('binary COPY codec', () => {
  test('journal rows round-trip, split at every byte', () => {
    fc.assert(
      fc.property(fc.array(rowArb, { maxLength: 4 }), (rows) => {
        const bytes = encode(rows);
        expect(decode([bytes])).toEqual(rows);
        for (let cut = 0; cut <= bytes.length; cut++) {
          expect(decode([bytes.subarray(0, cut), bytes.subarray(cut)])).toEqual(rows);
        }
      }),
      { numRuns: 60 },
    );
  });

  test('round-trips when fed one byte at a time, and the encoder is reusable', () => {
    const rows = fc.sample(rowArb, { numRuns: 30, seed: 42 });
    const enc = new CopyBinaryEncoder(1024);
    for (let round = 0; round < 2; round++) {
      enc.begin();
      for (const r of rows) writeJournalRow(enc, r.entry, r.prevKey, r.hashKey);
      const bytes = Buffer.from(enc.finish());
      const chunks = Array.from(bytes, (b) => Buffer.from([b]));
      expect(decode(chunks)).toEqual(rows);
    }
  });

  test('ranges of a larger buffer decode like chunks of their own, cut at every byte', () => {
    const rows = fc.sample(rowArb, { numRuns: 3, seed: 11 });
    const bytes = encode(rows);
    const padded = Buffer.concat([Buffer.from('xx'), bytes, Buffer.from('yyy')]);
    const view = new DataView(padded.buffer, padded.byteOffset, padded.length);
    for (let cut = 2; cut <= bytes.length + 2; cut++) {
      const out: JournalRow[] = [];
      const dec = new CopyBinaryDecoder(JOURNAL_COLUMNS.length,
        (row) => out.push(readJournalRow(row)));
      dec.pushRange(padded, view, 2, cut);
      dec.pushRange(padded, view, cut, bytes.length + 2);
      dec.end();
      expect(out).toEqual(rows);
    }
  });

  test('refuses a wrong signature, a missing trailer and bytes after the trailer', () => {
    const bytes = encode(fc.sample(rowArb, { numRuns: 2, seed: 7 }));
    const bad = Buffer.from(bytes);
    bad[0] = 0x51;
    expect(() => decode([bad])).toThrow(CopyDecodeError);
    expect(() => decode([bytes.subarray(0, bytes.length - 1)])).toThrow(/stream ended/);
    expect(() => decode([bytes, Buffer.from([0])])).toThrow(/after the trailer/);
  });
});
