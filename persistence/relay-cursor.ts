// The Kafka relay's per-shard cursor in PostgreSQL (table relay_cursor, beside the shard's
// journal) and the per-database relay lock. A cursor is saved only after the broker's ack.

import type pg from 'pg';

/*
 * relay_cursor(shard, sequence): every journal entry of `shard` with sequence <= `sequence` was
 * acknowledged by Kafka with acks=-1. No row means 0: relay the shard from its first entry.
 *
 * Saving never moves a cursor back (GREATEST): two relays that briefly overlap (a lock holder
 * whose connection died while it was sending) can only re-send events, never make the next
 * relay skip any. Re-sending is the at-least-once half of the contract; skipping would lose.
 *
 * One relay per database: the relay holds a session-level advisory lock on the connection it
 * reads and saves with. A second pod's relay finds the lock taken and stands by; when the
 * holder dies (kill -9, lost network) PostgreSQL ends its session and releases the lock, and
 * the stand-by takes over from the saved cursors. Cursors are saved on the lock's own
 * connection, so a relay whose lock session is gone cannot save anything.
 */

/** pg_advisory_lock key of the relay: 'rlay' as an int (migrations use 'ledg'). */
export const RELAY_LOCK_KEY = 0x726c6179;

/** Takes the database's relay lock for this session if free; true when this session holds it. */
export async function tryLockRelay(client: pg.ClientBase): Promise<boolean> {
  const res = await client.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_lock($1) AS locked', [RELAY_LOCK_KEY]);
  return res.rows[0]?.locked === true;
}

/**
 * Shards of this database the relay follows: those with an owner (a pod opened them) or a
 * cursor. A shard with journal rows always has an owner row: PgJournal claims before writing.
 */
export async function relayShards(client: pg.ClientBase): Promise<number[]> {
  const res = await client.query<{ shard: number }>(
    'SELECT shard FROM shard_owner UNION SELECT shard FROM relay_cursor ORDER BY shard');
  return res.rows.map((r) => r.shard);
}

/** The saved cursors of `shards` (0 for a shard without a row). */
export async function loadCursors(
  client: pg.ClientBase,
  shards: readonly number[],
): Promise<Map<number, number>> {
  const res = await client.query<{ shard: number; sequence: string }>(
    'SELECT shard, sequence FROM relay_cursor WHERE shard = ANY($1::int[])', [shards]);
  const out = new Map<number, number>(shards.map((s) => [s, 0]));
  for (const row of res.rows) out.set(row.shard, Number(row.sequence));
  return out;
}

/** Saves cursors in one statement; a saved cursor never decreases. */
export async function saveCursors(
  client: pg.ClientBase,
  cursors: ReadonlyMap<number, number>,
): Promise<void> {
  if (cursors.size === 0) return;
  const shards: number[] = [];
  const sequences: number[] = [];
  for (const [shard, sequence] of cursors) {
    if (!Number.isSafeInteger(sequence) || sequence < 0) {
      throw new RangeError(`relay cursor: bad sequence ${sequence} for shard ${shard}`);
    }
    shards.push(shard);
    sequences.push(sequence);
  }
  await client.query(
    `INSERT INTO relay_cursor AS c (shard, sequence)
       SELECT * FROM unnest($1::int[], $2::bigint[])
     ON CONFLICT (shard) DO UPDATE
       SET sequence = GREATEST(c.sequence, EXCLUDED.sequence), updated_at = now()`,
    [shards, sequences]);
}
