// Reads COMMITTED journal rows for the Kafka relay: per shard, the rows after its cursor, in
// sequence order, bounded per shard. Never reads in-memory state; never writes.

import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  CopyBinaryDecoder,
  JOURNAL_COLUMNS,
  JOURNAL_COLUMN_LIST,
  readJournalRow,
} from './pg-copy-binary.js';

/*
 * Why `COPY (SELECT ...) TO STDOUT (FORMAT binary)` and not a plain SELECT: one statement reads
 * every shard of the database (unnest of (shard, cursor) pairs, one LATERAL index range scan on
 * the (shard, sequence) primary key per shard, LIMIT per shard), and the rows arrive in the
 * binary form pg-copy-binary already decodes, split at any byte, without building a row object
 * of strings per column as node-postgres does for a SELECT (bigint and bytea would arrive as
 * text to be parsed again). The per-shard bound keeps one busy shard from starving the others.
 *
 * Why the bound is a sequence RANGE (after, after + limit] and not `ORDER BY sequence LIMIT`:
 * sequences are contiguous, so both select the same rows, but with LIMIT the planner may (and
 * on a young table did) pick a bitmap scan of EVERY row after the cursor plus a top-N sort:
 * 8.6 ms for 1,024 rows with 5,000 behind, and a read time growing with the backlog, just
 * when the relay catches up after an outage. The range bounds the scan whatever the plan.
 *
 * Only committed rows are visible to the statement, and per shard they are always a prefix of
 * the sequence: one writer per shard commits its groups one after another, and a new owner
 * starts from the head it read after fencing the old one. A gap is therefore corruption: the
 * read fails with `journal_gap` rather than relay past it. A gap wider than the read's range
 * returns no row at all; sourceLag finds it (rows after the cursor, but not the next one).
 */

export class RelaySourceError extends Error {
  constructor(readonly code: 'journal_gap', message: string) {
    super(`${code}: ${message}`);
    this.name = 'RelaySourceError';
  }
}

function checkedInts(values: Iterable<number>, what: string): string {
  const out: string[] = [];
  for (const v of values) {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`relay source: bad ${what} ${v}`);
    out.push(String(v));
  }
  return `'{${out.join(',')}}'`;
}

/**
 * The committed entries after each shard's cursor, at most `perShardLimit` per shard, grouped
 * by shard in sequence order. Throws RelaySourceError when a shard's rows do not continue its
 * cursor exactly.
 */
export async function readCommitted(
  client: pg.ClientBase,
  cursors: ReadonlyMap<number, number>,
  perShardLimit: number,
): Promise<JournalEntry[]> {
  if (cursors.size === 0) return [];
  if (!Number.isSafeInteger(perShardLimit) || perShardLimit < 1) {
    throw new RangeError(`relay source: perShardLimit ${perShardLimit}`);
  }
  const entries: JournalEntry[] = [];
  const decoder = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => {
    entries.push(readJournalRow(row).entry);
  });
  // COPY takes no bind parameters: every value inlined is a checked non-negative integer.
  const sql =
    `COPY (SELECT j.* FROM unnest(${checkedInts(cursors.keys(), 'shard')}::int[], ` +
    `${checkedInts(cursors.values(), 'sequence')}::bigint[]) AS c(s, after) ` +
    `CROSS JOIN LATERAL (SELECT ${JOURNAL_COLUMN_LIST} FROM journal ` +
    `WHERE shard = c.s AND sequence > c.after AND sequence <= c.after + ${perShardLimit} ` +
    `ORDER BY sequence) j ` +
    'ORDER BY j.shard, j.sequence) TO STDOUT (FORMAT binary)';
  const stream = client.query(copyTo(sql));
  for await (const chunk of stream) decoder.push(chunk as Buffer);
  decoder.end();
  checkContinuity(entries, cursors);
  return entries;
}

function checkContinuity(entries: readonly JournalEntry[], cursors: ReadonlyMap<number, number>) {
  let shard = -1;
  let expected = 0;
  for (const e of entries) {
    if (e.shard !== shard) {
      shard = e.shard;
      expected = (cursors.get(shard) ?? 0) + 1;
    }
    if (e.sequence !== expected) {
      throw new RelaySourceError('journal_gap',
        `shard ${shard}: found sequence ${e.sequence} where ${expected} was expected`);
    }
    expected++;
  }
}

export interface SourceLag {
  /** committed entries not yet acknowledged by the broker, summed over the shards */
  entries: number;
  /** age of the oldest such entry (its logical time), 0 when there is none */
  seconds: number;
  /** the journal head per shard */
  heads: Map<number, number>;
  /** shards with rows after the cursor but not the next sequence: a gap (corruption) */
  gaps: number[];
}

/** How far the cursors trail the committed journal: two index probes per shard. */
export async function sourceLag(
  client: pg.ClientBase,
  cursors: ReadonlyMap<number, number>,
  nowMs: number,
): Promise<SourceLag> {
  const lag: SourceLag = { entries: 0, seconds: 0, heads: new Map(), gaps: [] };
  if (cursors.size === 0) return lag;
  const res = await client.query<{ shard: number; head: string | null; next: string | null }>(
    `SELECT c.s AS shard, h.sequence AS head, n.time_ms AS next
     FROM unnest($1::int[], $2::bigint[]) AS c(s, after)
     LEFT JOIN LATERAL (SELECT sequence FROM journal WHERE shard = c.s
                        ORDER BY sequence DESC LIMIT 1) h ON true
     LEFT JOIN LATERAL (SELECT time_ms FROM journal WHERE shard = c.s
                        AND sequence = c.after + 1) n ON true`,
    [[...cursors.keys()], [...cursors.values()]]);
  for (const row of res.rows) {
    const head = row.head === null ? 0 : Number(row.head);
    lag.heads.set(row.shard, head);
    lag.entries += Math.max(0, head - (cursors.get(row.shard) ?? 0));
    if (row.next === null && head > (cursors.get(row.shard) ?? 0)) lag.gaps.push(row.shard);
    if (row.next !== null) {
      lag.seconds = Math.max(lag.seconds, Math.max(0, nowMs - Number(row.next)) / 1000);
    }
  }
  return lag;
}
