// The auditor's PostgreSQL reader: streams a shard's journal rows with one binary COPY, each row
// re-encoded as its journal-codec record and hashed. Judges nothing; never writes.

import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { EntryEncoder, RecordScanner } from '../protocol/journal-codec.js';
import { HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';
import { grownBuffer } from '../protocol/grow-buffer.js';
import {
  CopyBinaryDecoder,
  CopyDecodeError,
  JOURNAL_COLUMNS,
  JOURNAL_COLUMN_LIST,
  readJournalRow,
  type CopyRow,
} from './pg-copy-binary.js';
import { copyRowRecord, rowRecordBytes } from './pg-row-record.js';
import {
  RecordBatch,
  detachBatch,
  encodedKey,
  type OnUnits,
  type ReadBatch,
  type ReadProblem,
} from './record-batch.js';

/** The database of a shard: FIXED mapping shard % urls.length (see pg-journal). */
export function databaseOfShard(shard: number, databases: number): number {
  return shard % databases;
}

/**
 * Shards that have journal rows or an owner in the database at `url`, ascending. Uses a loose
 * index scan over the (shard, sequence) key: one index probe per shard, never a table scan.
 */
export async function listPgShards(url: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query<{ shard: number }>(`
      WITH RECURSIVE s(shard) AS (
        SELECT min(shard) FROM journal
        UNION ALL
        SELECT (SELECT min(shard) FROM journal WHERE journal.shard > s.shard)
        FROM s WHERE s.shard IS NOT NULL)
      SELECT shard FROM s WHERE shard IS NOT NULL
      UNION SELECT shard FROM shard_owner ORDER BY shard`);
    return res.rows.map((r) => r.shard);
  } finally {
    await client.end();
  }
}

/** The highest stored sequence of a shard (0 when none): the size of its journal, for ETA. */
export async function pgShardRows(url: string, shard: number): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const res = await client.query<{ n: string | null }>(
      'SELECT max(sequence) AS n FROM journal WHERE shard = $1', [shard]);
    return Number(res.rows[0]?.n ?? 0);
  } finally {
    await client.end();
  }
}

/**
 * Streams a shard's rows in sequence order with one `COPY (SELECT ...) TO STDOUT (FORMAT
 * binary)` through pg-copy-streams on a connection of its own, one batch per chunk (see
 * RecordBatch: reused, valid until the next). A row that cannot be decoded ends the stream
 * with a problem. The connection is closed however the loop ends.
 */
export async function* scanPgShard(
  url: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<RecordBatch> {
  if (!Number.isSafeInteger(shard) || shard < 0) throw new RangeError(`bad shard ${shard}`);
  const client = new pg.Client({ connectionString: url, application_name: 'ledger-audit' });
  await client.connect();
  const sink = new RowSink();
  const decoder = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => sink.row(row));
  let batch = sink.begin();
  let rows = 0;
  let afterSequence = 0;
  const onChunk = (chunk: Buffer): void => {
    if (batch.problem !== null) return;
    try {
      const view = new DataView(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      decoder.pushRange(chunk, view, 0, chunk.length);
    } catch (err) {
      batch.problem = problemAt(shard, batch.lastSequence(afterSequence), err);
    }
  };
  try {
    // COPY takes no bind parameters; `shard` is a checked safe integer. pg-copy-streams hands
    // over the CopyData of one socket read as one chunk: one batch per chunk.
    const copy = client.query(copyTo(
      `COPY (SELECT ${JOURNAL_COLUMN_LIST} FROM journal WHERE shard = ${shard} ` +
        'ORDER BY sequence) TO STDOUT (FORMAT binary)'));
    for await (const chunk of copy as AsyncIterable<Buffer>) {
      onChunk(chunk);
      rows += batch.count;
      afterSequence = batch.lastSequence(afterSequence);
      onUnits(rows);
      yield batch;
      if (batch.problem !== null) return;
      batch = sink.begin();
    }
    decoder.end();
  } finally {
    await client.end().catch(() => undefined); // the copy's own error is what the caller sees
  }
}

/** scanPgShard with records that outlive the reader (for tools and tests; slower). */
export async function* readPgShard(
  url: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<ReadBatch> {
  for await (const batch of scanPgShard(url, shard, onUnits)) yield detachBatch(batch);
}

/**
 * Turns decoded COPY rows into the records of one batch, laid out back to back in one reused
 * buffer. Most rows are re-encoded straight from their bytes (copyRowRecord); the rest take the
 * general path: decoded to strings, encoded by the journal codec (its errors become the key).
 */
class RowSink {
  private out: Buffer = Buffer.allocUnsafe(256 * 1024);
  private view: DataView = new DataView(this.out.buffer, this.out.byteOffset, this.out.length);
  private used = 0;
  private readonly batch = new RecordBatch();
  private readonly scanner = new RecordScanner();
  private readonly encoder = new EntryEncoder(4096);

  begin(): RecordBatch {
    this.used = 0;
    this.batch.reset(this.out);
    return this.batch;
  }

  row(row: CopyRow): void {
    const bytes = rowRecordBytes(row);
    if (bytes >= 0) {
      this.ensure(bytes);
      const at = this.used;
      const end = copyRowRecord(row, row.view, this.out, this.view, at);
      if (end >= 0) {
        const error = this.scanner.read(this.out, at, end, this.batch.slot());
        if (error !== null) throw new Error(`pg-journal-reader: re-encoded row is ${error}`);
        this.batch.add(this.scanner.key, at, this.scanner.hashAt);
        this.used = end;
        return;
      }
    }
    this.general(row);
  }

  private general(row: CopyRow): void {
    const r = readJournalRow(row);
    for (const key of [r.prevKey, r.hashKey]) {
      if (key.length !== HASH_BYTES) throw new CopyDecodeError(`a hash of ${key.length} bytes`);
    }
    this.ensure(2 * HASH_BYTES);
    const at = this.used;
    this.out.write(r.prevKey, at, 'latin1');
    this.out.write(r.hashKey, at + HASH_BYTES, 'latin1');
    this.used = at + 2 * HASH_BYTES;
    this.batch.slot();
    const entry: JournalEntry = r.entry;
    this.batch.add(encodedKey(this.encoder, entry, r.prevKey), at, at + HASH_BYTES, entry);
  }

  private ensure(bytes: number): void {
    if (this.used + bytes <= this.out.length) return;
    this.out = grownBuffer(this.out, this.used, this.used + bytes);
    this.view = new DataView(this.out.buffer, this.out.byteOffset, this.out.length);
    this.batch.buf = this.out;
  }
}

function problemAt(shard: number, after: number, err: unknown): ReadProblem {
  const reason = err instanceof Error ? err.message : String(err);
  const where = `journal row after shard ${shard} sequence ${after}`;
  return { shard, afterSequence: after, where, reason, torn: false };
}
