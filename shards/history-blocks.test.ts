// Account histories in the shard's history blocks: ranges never overlap (every account reads
// back exactly its own codes), freed ranges merge and are reused, long histories and a
// recovered book's shared column keep working.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Account } from './account.js';
import { HistoryBlocks, POOLED_MAX_ROOM } from './history-blocks.js';
import { TenantBook } from './ledger-book.js';

function accountsOf(book: TenantBook, n: number): Account[] {
  const out: Account[] = [];
  for (let i = 0; i < n; i++) {
    out.push(new Account(book, i, `a${i}`, 'USD', true, '{}', 0, i + 1, book.totals));
  }
  return out;
}

function codesOf(a: Account): number[] {
  const out: number[] = [];
  for (let k = 0; k < a.codeCount; k++) out.push(a.codeAt(k));
  return out;
}

describe('history blocks', () => {
  it('gives every account its own codes, whatever order they grow and shrink in', () => {
    fc.assert(fc.property(
      fc.array(fc.tuple(fc.nat(39), fc.integer({ min: -1, max: 200 })), { maxLength: 3000 }),
      (ops) => {
        const blocks = new HistoryBlocks();
        const books = [new TenantBook('t1', blocks), new TenantBook('t2', blocks)];
        const accounts = [...accountsOf(books[0] as TenantBook, 20),
          ...accountsOf(books[1] as TenantBook, 20)];
        const expected: number[][] = accounts.map(() => []);
        let code = 0;
        for (const [who, times] of ops) {
          const a = accounts[who] as Account;
          const mine = expected[who] as number[];
          if (times === -1) { // an atomic batch's rollback pops the newest code
            const last = mine.pop();
            if (last !== undefined) a.popCode(last);
            continue;
          }
          for (let k = 0; k < times; k++) {
            a.pushCode(code);
            mine.push(code++);
          }
        }
        accounts.forEach((a, i) => expect(codesOf(a)).toEqual(expected[i]));
      }), { numRuns: 60 });
  });

  it('merges freed ranges, so accounts growing in step reuse what they left', () => {
    const blocks = new HistoryBlocks();
    const accounts = accountsOf(new TenantBook('t', blocks), 4096);
    for (let round = 0; round < 1024; round++) {
      for (const a of accounts) a.pushCode(round);
    }
    const live = 4096 * 1024; // every account has exactly 1024 codes in a room of 1024
    // Without merging, the 4...512-int ranges left behind would hold about as much again;
    // with it, a block more than the live ranges at most (the peak of a round of moves).
    expect(blocks.heldInts).toBeLessThanOrEqual(live + 65_536);
    expect(blocks.freeInts).toBe(blocks.heldInts - live);
    expect(codesOf(accounts[4095] as Account).slice(1020)).toEqual([1020, 1021, 1022, 1023]);
  });

  it('keeps histories longer than a pooled range in arrays of their own', () => {
    const blocks = new HistoryBlocks();
    const [a, b] = accountsOf(new TenantBook('t', blocks), 2) as [Account, Account];
    const n = 4 * POOLED_MAX_ROOM + 3;
    for (let k = 0; k < n; k++) {
      a.pushCode(2 * k);
      if (k % 100 === 0) b.pushCode(k);
    }
    expect(codesOf(a)).toEqual(Array.from({ length: n }, (_, k) => 2 * k));
    expect(codesOf(b)).toEqual(Array.from({ length: Math.ceil(n / 100) }, (_, k) => 100 * k));
    // a's last pooled range went back when it moved out, merged whole with what b left free
    expect(blocks.freeInts).toBe(blocks.heldInts - 256);
  });

  it('moves a recovered account out of its shared column when it outgrows its slice', () => {
    const blocks = new HistoryBlocks();
    const [a, b] = accountsOf(new TenantBook('t', blocks), 2) as [Account, Account];
    const shared = Int32Array.from([7, 8, 9, 0, 5, 0, 0, 0]);
    a.adoptCodes(shared, 0, 3, 4);
    b.adoptCodes(shared, 4, 1, 4);
    a.pushCode(10);
    a.pushCode(11); // past its room of 4: now in the blocks; the column is not theirs to free
    b.pushCode(6);
    expect(codesOf(a)).toEqual([7, 8, 9, 10, 11]);
    expect(codesOf(b)).toEqual([5, 6]);
    expect(blocks.heldInts - blocks.freeInts).toBe(8);
  });

  it('gives histories arrays of their own once the shard made all the blocks it may', () => {
    const blocks = new HistoryBlocks(1);
    const accounts = accountsOf(new TenantBook('t', blocks), 40);
    for (let round = 0; round < 2000; round++) { // 40 rooms of 2048 need more than one block
      for (const a of accounts) a.pushCode(round);
    }
    expect(blocks.heldInts).toBe(65_536);
    const expected = Array.from({ length: 2000 }, (_, k) => k);
    for (const a of accounts) expect(codesOf(a)).toEqual(expected);
  });

  it('refuses a room that is not a pooled power of two', () => {
    const blocks = new HistoryBlocks();
    for (const room of [0, 2, 6, 2 * POOLED_MAX_ROOM]) {
      expect(() => blocks.take(room)).toThrow(/not a pooled room/);
    }
  });
});
