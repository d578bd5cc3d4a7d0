// Integration tests of the PostgreSQL journal against the machine's real server, over two shard
// databases created for the test and dropped afterwards. Timing is never asserted here.

import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import pg from 'pg';
import { entryHash } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead } from '../protocol/storage.js';
import { createTestDatabases, type TestDatabases } from '../test/support/pg.js';
import { PgJournal, PgJournalError } from './pg-journal.js';
import { MIGRATIONS, migrate } from './pg-schema.js';

let dbs: TestDatabases;
const open: PgJournal[] = [];

beforeAll(async () => {
  dbs = await createTestDatabases(2);
});

afterAll(async () => {
  for (const j of open) await j.close();
  await dbs.drop();
});

function journal(podId = 'pod-a'): PgJournal {
  const j = new PgJournal(dbs.urls, { podId, commitTimeoutMs: 10_000 });
  open.push(j);
  return j;
}

/** Entries `from..to` of a shard, with every field varied (including non-ASCII text). */
function entries(shard: number, from: number, to: number, epoch: number): JournalEntry[] {
  const out: JournalEntry[] = [];
  for (let sequence = from; sequence <= to; sequence++) {
    out.push({
      shard, sequence, epoch,
      kind: sequence % 3 === 0 ? 'pending' : 'post',
      tenant: `tenant-${shard}`,
      id: `tx-${shard}-${sequence}`,
      debitAccountId: 'acc-ä',
      creditAccountId: `acc-${sequence % 7}`,
      amountMinor: BigInt(sequence) * 1_000_000_007n - 3n,
      currencyCode: 'EUR',
      time: 1_700_000_000_000 + sequence,
      detail: sequence % 5 === 0 ? '{"description":"café ☕"}' : '',
    });
  }
  return out;
}

async function replayAll(j: PgJournal, shard: number): Promise<[JournalEntry[], ChainHead]> {
  const seen: JournalEntry[] = [];
  const head = await j.replay(shard, { sequence: 0, hash: ZERO_HASH }, (e) => seen.push(e));
  return [seen, head];
}

async function sql<T extends pg.QueryResultRow>(db: number, text: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: dbs.urls[db] });
  await client.connect();
  try {
    return (await client.query<T>(text)).rows;
  } finally {
    await client.end();
  }
}

/** Shards 0..3 over two databases: 0 and 2 in database 0, 1 and 3 in database 1. */
const SHARDS = [0, 1, 2, 3];

describe('PgJournal', () => {
  test('commit, close, reopen: replay gives identical entries, hashes and heads', async () => {
    const a = journal();
    await a.open(SHARDS, 0);
    const epoch = a.epochOf(0);
    const written = new Map(SHARDS.map((s) => [s, entries(s, 1, 40, a.epochOf(s))]));
    for (let i = 0; i < 40; i += 10) {
      // one group spans both databases and all four shards
      await a.commit(SHARDS.flatMap((s) => (written.get(s) ?? []).slice(i, i + 10)));
    }
    const headsBefore = SHARDS.map((s) => a.head(s));
    await a.close();

    const b = journal();
    await b.open(SHARDS, 0);
    expect(b.epochOf(0)).toBe(epoch + 1);
    for (const s of SHARDS) {
      const [seen, head] = await replayAll(b, s);
      expect(seen).toEqual(written.get(s));
      expect(head).toEqual(headsBefore[s]);
      expect(b.head(s)).toEqual(head);
      // the same hash definition as every other journal (journal-codec's entryHash)
      let prev: Uint8Array = ZERO_HASH;
      for (const e of seen) prev = entryHash(prev, e);
      expect(Buffer.from(head.hash)).toEqual(Buffer.from(prev));
    }
    const rows = await sql<{ n: string }>(0, 'SELECT count(*) AS n FROM journal');
    expect(rows[0]?.n).toBe('80'); // shards 0 and 2 only: shard % 2 === 0
  });

  test('replay from a snapshot head continues the chain from there', async () => {
    const j = journal();
    await j.open([5], 0);
    await j.commit(entries(5, 1, 30, j.epochOf(5)));
    const [all] = await replayAll(j, 5);
    let hash: Uint8Array = ZERO_HASH;
    for (const e of all.slice(0, 12)) hash = entryHash(hash, e);
    const tail: JournalEntry[] = [];
    const head = await j.replay(5, { sequence: 12, hash }, (e) => tail.push(e));
    expect(tail).toEqual(all.slice(12));
    expect(head).toEqual(j.head(5));
    const wrong = j.replay(5, { sequence: 12, hash: ZERO_HASH }, () => undefined);
    await expect(wrong).rejects.toThrow(/shard 5 sequence 13: prev_hash/);
  });

  test('a higher epoch claimed by a second owner fails the first one\'s next commit', async () => {
    const first = journal('pod-first');
    await first.open([10, 11], 0);
    const old = first.epochOf(10);
    await first.commit([...entries(10, 1, 5, old), ...entries(11, 1, 5, first.epochOf(11))]);

    const second = journal('pod-second');
    await second.open([10], old + 5);
    expect(second.epochOf(10)).toBe(old + 5);

    // the group touches shard 11 (still ours, other database) and shard 10 (lost)
    const stale = first.commit([
      ...entries(10, 6, 9, old),
      ...entries(11, 6, 9, first.epochOf(11)),
    ]);
    await expect(stale).rejects.toMatchObject({ code: 'stale_epoch' });
    await expect(first.commit(entries(11, 10, 10, first.epochOf(11)))).rejects.toThrow();

    const [seen] = await replayAll(second, 10);
    expect(seen.map((e) => e.sequence)).toEqual([1, 2, 3, 4, 5]);
    const rows = await sql<{ n: string }>(0, 'SELECT count(*) AS n FROM journal WHERE shard = 10');
    expect(rows[0]?.n).toBe('5');
    // the new owner continues the chain at its own epoch
    await second.commit(entries(10, 6, 8, old + 5));
    expect(second.head(10).sequence).toBe(8);
  });

  test('a claim racing an in-flight commit: that commit is in the new head or gone', async () => {
    for (let round = 0; round < 8; round++) {
      const shard = 100 + 2 * round; // database 0
      const first = journal('pod-first');
      await first.open([shard], 0);
      await first.commit(entries(shard, 1, 10, first.epochOf(shard)));
      const big = entries(shard, 11, 8200, first.epochOf(shard));
      const inFlight = first.commit(big).then(() => 'committed', () => 'rejected');
      // stagger the claim so that it lands before, during or after the COPY
      await new Promise((r) => setTimeout(r, round * 12));
      const second = journal('pod-second');
      await second.open([shard], 0);
      const outcome = await inFlight;
      const expected = outcome === 'committed' ? 8200 : 10;
      expect(second.head(shard).sequence).toBe(expected);
      const [seen, head] = await replayAll(second, shard);
      expect(seen.length).toBe(expected);
      expect(head).toEqual(second.head(shard));
      await first.close();
    }
  });

  test('claiming an epoch that is not higher than the current one is refused', async () => {
    const a = journal('pod-a');
    await a.open([20], 7);
    const b = journal('pod-b');
    const refused = b.open([20], 7);
    await expect(refused).rejects.toBeInstanceOf(PgJournalError);
    await expect(refused).rejects.toMatchObject({ code: 'stale_epoch' });
    await expect(refused).rejects.toThrow(/shard 20 at epoch 7 \(pod-a\)/);
    // a's ownership is untouched: it still commits
    await a.commit(entries(20, 1, 3, 7));
  });

  test('overlapping commit calls are applied in call order', async () => {
    const j = journal();
    await j.open([30, 31], 0);
    const all = [...entries(30, 1, 60, j.epochOf(30))];
    const other = entries(31, 1, 60, j.epochOf(31));
    const calls: Promise<void>[] = [];
    for (let i = 0; i < 60; i += 3) {
      calls.push(j.commit([...all.slice(i, i + 3), ...other.slice(i, i + 3)]));
    }
    await Promise.all(calls);
    const [seen30] = await replayAll(j, 30);
    const [seen31] = await replayAll(j, 31);
    expect(seen30).toEqual(all);
    expect(seen31).toEqual(other);
  });

  test('an edited amount is detected on replay, naming shard and sequence', async () => {
    const j = journal();
    await j.open([40], 0);
    await j.commit(entries(40, 1, 20, j.epochOf(40)));
    await sql(0, 'UPDATE journal SET amount_minor = amount_minor + 1 ' +
      'WHERE shard = 40 AND sequence = 13');
    const replay = replayAll(j, 40);
    await expect(replay).rejects.toMatchObject({ code: 'journal_corrupt' });
    await expect(replayAll(j, 40)).rejects.toThrow(/shard 40 sequence 13: hash does not match/);
  });

  test('a deleted row is detected on replay as missing', async () => {
    const j = journal();
    await j.open([42], 0);
    await j.commit(entries(42, 1, 10, j.epochOf(42)));
    await sql(0, 'DELETE FROM journal WHERE shard = 42 AND sequence = 4');
    await expect(replayAll(j, 42)).rejects.toThrow(/shard 42 sequence 4: found sequence 5/);
  });

  test('rejects an append that does not continue the chain, writing nothing', async () => {
    const j = journal();
    await j.open([50], 0);
    const bad = j.commit(entries(50, 2, 3, j.epochOf(50)));
    await expect(bad).rejects.toMatchObject({ code: 'invalid_append' });
    const rows = await sql<{ n: string }>(0, 'SELECT count(*) AS n FROM journal WHERE shard = 50');
    expect(rows[0]?.n).toBe('0');
  });

  test('migrations are idempotent: a second open applies nothing', async () => {
    const a = journal();
    await a.open([60], 0);
    const b = journal();
    await b.open([60], 0);
    for (const db of [0, 1]) {
      const versions = await sql<{ version: number }>(
        db, 'SELECT version FROM ledger_schema_version ORDER BY version');
      expect(versions.map((v) => v.version)).toEqual(MIGRATIONS.map((m) => m.version));
      const client = new pg.Client({ connectionString: dbs.urls[db] });
      await client.connect();
      try {
        expect(await migrate(client)).toBe(0);
      } finally {
        await client.end();
      }
    }
  });
});
