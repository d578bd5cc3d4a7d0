import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  EntryEncoder, MIN_RECORD_BYTES, decodeEntry, encodeEntry, entryHash, hashKey, sameHash,
} from './journal-codec.js';
import { ENTRY_KINDS, ZERO_HASH, type JournalEntry } from './journal-entry.js';

const safeU = (max: number) => fc.integer({ min: 0, max });
const text = fc.oneof(fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }));
const arbEntry: fc.Arbitrary<JournalEntry> = fc.record({
  shard: safeU(0xffff_ffff),
  sequence: fc.oneof(safeU(1000), safeU(Number.MAX_SAFE_INTEGER)),
  epoch: safeU(0xffff_ffff),
  kind: fc.constantFrom(...ENTRY_KINDS),
  tenant: text,
  id: text,
  debitAccountId: text,
  creditAccountId: text,
  amountMinor: fc.oneof(
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.constantFrom(-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n),
  ),
  currencyCode: fc.constantFrom('EUR', 'JPY', 'BHD', ''),
  time: fc.oneof(safeU(2 ** 42), safeU(Number.MAX_SAFE_INTEGER)),
  detail: fc.oneof(fc.constant(''), fc.json(), text),
});

function sample(i: number): JournalEntry {
  return {
    shard: 5, sequence: i, epoch: 2, kind: 'post', tenant: 't-ü', id: `tx-${i}`,
    debitAccountId: 'a1', creditAccountId: 'a2', amountMinor: BigInt(i) * 100n,
    currencyCode: 'EUR', time: 1_700_000_000_000 + i, detail: '{"description":"€ rent"}',
  };
}

describe('journal-codec', () => {
  it('round-trips random entries and chains their hashes', () => {
    fc.assert(fc.property(fc.array(arbEntry, { minLength: 1, maxLength: 8 }), (entries) => {
      const enc = new EntryEncoder(256);
      const head = enc.appendChain(entries, ZERO_HASH);
      const buf = enc.bytes();
      let off = 0;
      let prev: Uint8Array = ZERO_HASH;
      for (const e of entries) {
        const d = decodeEntry(buf, off);
        if (!d.ok) throw new Error(`decode failed: ${d.error}`);
        expect(d.entry).toEqual(e);
        expect(sameHash(d.prevHash, prev)).toBe(true);
        expect(d.follows(hashKey(prev))).toBe(true);
        expect(sameHash(d.hash, entryHash(prev, e))).toBe(true);
        prev = d.hash;
        off = d.end;
      }
      expect(off).toBe(buf.length);
      expect(sameHash(head, prev)).toBe(true);
    }));
  });

  it('writes the same bytes when it copies the previous hash and a repeated detail', () => {
    // Details from a small set (one longer than the encoder keeps), so runs repeat and switch.
    const details = ['', '{"a":1}', 'x'.repeat(300), '{"description":"€"}'];
    const chain = fc.array(fc.tuple(arbEntry, fc.integer({ min: 0, max: 3 })),
      { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(chain, (items) => {
      const entries = items.map(([e, d]) => ({ ...e, detail: details[d] as string }));
      const together = new EntryEncoder(128);
      together.appendChain(entries, ZERO_HASH);
      let prev: Uint8Array = ZERO_HASH;
      const apart = entries.map((e) => {
        const rec = encodeEntry(prev, e);
        prev = entryHash(prev, e);
        return rec;
      });
      expect(together.bytes()).toEqual(Buffer.concat(apart));
    }));
  });

  it('reports truncation at every byte, never throws', () => {
    const rec = encodeEntry(ZERO_HASH, sample(7));
    expect(rec.length).toBeGreaterThanOrEqual(MIN_RECORD_BYTES);
    for (let n = 0; n < rec.length; n++) {
      const d = decodeEntry(rec.subarray(0, n), 0);
      expect(d.ok).toBe(false);
      if (!d.ok) expect(d.error).toBe('truncated');
    }
    expect(decodeEntry(rec, 0).ok).toBe(true);
  });

  it('detects every single bit flip', () => {
    const rec = encodeEntry(entryHash(ZERO_HASH, sample(1)), sample(2));
    for (let i = 0; i < rec.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const bad = Buffer.from(rec);
        bad[i] = (bad[i] ?? 0) ^ (1 << bit);
        const d = decodeEntry(bad, 0);
        // A flip in prevHash is caught by the chain link (follows), any other by the hash.
        if (d.ok) {
          expect(i).toBeLessThan(32);
          expect(d.follows(hashKey(entryHash(ZERO_HASH, sample(1))))).toBe(false);
        }
      }
    }
  });

  it('never throws on garbage', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), fc.nat(400), (bytes, off) => {
      const d = decodeEntry(Buffer.from(bytes), off);
      expect(d.ok).toBe(false);
    }));
  });

  it('names a bad version and a bad kind', () => {
    const rec = encodeEntry(ZERO_HASH, sample(3));
    const v = Buffer.from(rec);
    v[32] = 9;
    expect(decodeEntry(v, 0)).toMatchObject({ ok: false, error: 'bad_version' });
    const k = Buffer.from(rec);
    k[33] = 200;
    expect(decodeEntry(k, 0)).toMatchObject({ ok: false, error: 'bad_kind' });
    const h = Buffer.from(rec);
    h[h.length - 1] = (h[h.length - 1] ?? 0) ^ 1;
    expect(decodeEntry(h, 0)).toMatchObject({ ok: false, error: 'bad_hash' });
  });

  it('refuses entries it cannot encode', () => {
    const enc = new EntryEncoder();
    expect(() => enc.appendChain([{ ...sample(1), amountMinor: 2n ** 63n }], ZERO_HASH))
      .toThrow(RangeError);
    expect(() => enc.appendChain([{ ...sample(1), sequence: 1.5 }], ZERO_HASH)).toThrow(RangeError);
    expect(() => enc.appendChain([{ ...sample(1), id: 'a\uD800' }], ZERO_HASH)).toThrow(RangeError);
  });

  it('keeps its buffer across reset', () => {
    const enc = new EntryEncoder(256);
    enc.appendChain([sample(1), sample(2)], ZERO_HASH);
    const first = Buffer.from(enc.bytes());
    enc.reset();
    enc.appendChain([sample(1), sample(2)], ZERO_HASH);
    expect(enc.bytes().equals(first)).toBe(true);
  });

  it('decodes repeated and near-identical fields exactly (decode caches)', () => {
    const fields = fc.record({
      tenant: fc.constantFrom('t1', 't2', 'tü'),
      debitAccountId: fc.constantFrom('a1', 'a2', 'b1', 'a10', 'ä1', ''),
      creditAccountId: fc.constantFrom('a1', 'a2', 'b1', 'a10', 'ä1', ''),
      currencyCode: fc.constantFrom('EUR', 'USD', 'EUX'),
      detail: fc.constantFrom('', '{"reason":"client"}', '{"reason":"clienT"}', 'x'.repeat(120)),
    });
    fc.assert(fc.property(fc.array(fields, { minLength: 1, maxLength: 20 }), (list) => {
      const entries = list.map((f, i) => ({ ...sample(i + 1), ...f }));
      const enc = new EntryEncoder(256);
      enc.appendChain(entries, ZERO_HASH);
      const buf = enc.bytes();
      let off = 0;
      for (const e of entries) {
        const d = decodeEntry(buf, off);
        if (!d.ok) throw new Error(`decode failed: ${d.error}`);
        expect(d.entry).toEqual(e);
        off = d.end;
      }
    }), { numRuns: 200 });
  });
});
