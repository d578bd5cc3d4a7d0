// The auditor's decoder: reads what decodeEntry reads, into one reused entry, and hashes the
// stored bytes without judging them, so an edited record still reads and its hash differs.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  EntryEncoder, RecordScanner, blankEntry, decodeEntry, hashEquals, hashKey,
} from './journal-codec.js';
import { ENTRY_KINDS, HASH_BYTES, ZERO_HASH, type JournalEntry } from './journal-entry.js';

const text = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'grapheme' }),
  fc.constantFrom('a1', 'a2', 'tenant', 'EUR', ''));
const arbEntry: fc.Arbitrary<JournalEntry> = fc.record({
  shard: fc.integer({ min: 0, max: 0xffff_ffff }),
  sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  epoch: fc.integer({ min: 0, max: 0xffff_ffff }),
  kind: fc.constantFrom(...ENTRY_KINDS),
  tenant: text,
  id: text,
  debitAccountId: text,
  creditAccountId: text,
  amountMinor: fc.oneof(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.constantFrom(0n, 1n, 1024n, 2n ** 32n + 1n)),
  currencyCode: fc.constantFrom('EUR', 'JPY', ''),
  time: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  detail: fc.oneof(fc.constant(''), fc.json(), text),
});

function chain(entries: readonly JournalEntry[]): Buffer {
  const enc = new EntryEncoder(256);
  enc.appendChain(entries, ZERO_HASH);
  return Buffer.from(enc.bytes());
}

describe('RecordScanner', () => {
  it('reads what decodeEntry reads, with the stored hash as its key', () => {
    fc.assert(fc.property(fc.array(arbEntry, { minLength: 1, maxLength: 12 }), (entries) => {
      const buf = chain(entries);
      const scanner = new RecordScanner();
      const into = blankEntry();
      let off = 0;
      for (const e of entries) {
        const d = decodeEntry(buf, off);
        expect(scanner.read(buf, off, buf.length, into)).toBeNull();
        if (!d.ok) throw new Error(d.error);
        expect(into).toEqual(e);
        expect(scanner.key).toBe(d.hashKey);
        expect(hashEquals(buf, scanner.hashAt, scanner.key)).toBe(true);
        expect(scanner.end).toBe(d.end);
        off = scanner.end;
      }
    }));
  });

  it('reads an edited record, whose key then differs from its stored hash', () => {
    const e: JournalEntry = { shard: 1, sequence: 1, epoch: 1, kind: 'post', tenant: 't',
      id: 'x', debitAccountId: 'a', creditAccountId: 'b', amountMinor: 7n, currencyCode: 'EUR',
      time: 5, detail: '' };
    const buf = chain([e]);
    buf[HASH_BYTES + 26] = 8; // amount 7 -> 8
    const scanner = new RecordScanner();
    const into = blankEntry();
    expect(scanner.read(buf, 0, buf.length, into)).toBeNull();
    expect(into.amountMinor).toBe(8n);
    expect(hashEquals(buf, scanner.hashAt, scanner.key)).toBe(false);
    expect(decodeEntry(buf, 0)).toMatchObject({ ok: false, error: 'bad_hash' });
  });

  it('refuses a record that does not end by the limit, at every cut', () => {
    const buf = chain([{ shard: 1, sequence: 1, epoch: 1, kind: 'post', tenant: 't', id: 'x',
      debitAccountId: 'a', creditAccountId: 'b', amountMinor: 7n, currencyCode: 'EUR', time: 5,
      detail: '{}' }]);
    const scanner = new RecordScanner();
    for (let cut = 0; cut < buf.length; cut++) {
      expect(scanner.read(buf, 0, cut, blankEntry())).toBe('truncated');
    }
    expect(scanner.read(buf, 0, buf.length + 1, blankEntry())).toBe('truncated');
    expect(hashEquals(buf, 0, hashKey(ZERO_HASH))).toBe(true);
    expect(hashEquals(buf, 0, 'short')).toBe(false);
  });
});
