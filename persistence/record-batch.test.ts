// Record batches: the whole-run hash comparison agrees with comparing each record, and the
// per-record form survives a round trip through a batch.

import { describe, expect, test } from 'vitest';
import { EntryEncoder, hashKey } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import { batchOf, detachBatch, encodedKey, type RawRecord } from './record-batch.js';

function records(n: number): RawRecord[] {
  const enc = new EntryEncoder();
  let prev = hashKey(ZERO_HASH);
  return Array.from({ length: n }, (_, i) => {
    const entry: JournalEntry = { shard: 0, sequence: i + 1, epoch: 1, kind: 'post', tenant: 't',
      id: `x${i}`, debitAccountId: 'a', creditAccountId: 'b', amountMinor: BigInt(i),
      currencyCode: 'EUR', time: i, detail: '' };
    const hash = encodedKey(enc, entry, prev);
    const r: RawRecord = { entry, prevKey: prev, hashKey: hash, bytesKey: null };
    prev = hash;
    return r;
  });
}

describe('record batch', () => {
  test('hashesMatch is true exactly when every record of the run matches its key', () => {
    const enc = new EntryEncoder();
    const recs = records(20);
    expect(batchOf(recs, (r) => encodedKey(enc, r.entry, r.prevKey)).hashesMatch(0, 20))
      .toBe(true);
    const edited = recs.map((r) => ({ ...r, entry: { ...r.entry } }));
    const victim = edited[13];
    if (victim === undefined) throw new Error('no record');
    victim.entry.amountMinor += 1n;
    const batch = batchOf(edited, (r) => encodedKey(enc, r.entry, r.prevKey));
    expect(batch.hashesMatch(0, 20)).toBe(false);
    expect(batch.hashesMatch(0, 13)).toBe(true);
    expect(batch.hashesMatch(14, 20)).toBe(true);
    const unencodable = batchOf(recs, (r) => (r.entry.sequence === 3 ? '(not encodable)'
      : encodedKey(enc, r.entry, r.prevKey)));
    expect(unencodable.allHashes).toBe(false);
    expect(unencodable.hashesMatch(3, 20)).toBe(false);
  });

  test('a detached batch gives back the records', () => {
    const recs = records(5).map((r) => ({ ...r, bytesKey: r.hashKey }));
    const batch = batchOf(recs, () => 'unused');
    expect(detachBatch(batch)).toEqual({ records: recs, problem: null });
  });
});
