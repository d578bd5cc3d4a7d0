// Raw journal readers for the auditor: stream a shard's stored records (embedded segment files or
// PostgreSQL binary COPY) in storage order. They judge nothing: no chain, sequence or hash check.

import { createHash } from 'node:crypto';
import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { decodeEntry } from '../protocol/journal-codec.js';
import { HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';
import { FRAME_MAGIC, shardDirName } from './journal-file.js';
import {
  CopyBinaryDecoder,
  JOURNAL_COLUMNS,
  JOURNAL_COLUMN_LIST,
  readJournalRow,
} from './pg-copy-binary.js';

/** One stored record, exactly as found. Hashes are 32-byte strings in latin1 form. */
export interface RawRecord {
  entry: JournalEntry;
  /** the stored hash of the predecessor */
  prevKey: string;
  /** the stored hash of this record */
  hashKey: string;
  /**
   * SHA-256 of the stored bytes prevHash ‖ body when the store keeps the encoded record (files);
   * null when the store keeps fields (PostgreSQL) and the hash must be recomputed from them.
   */
  bytesKey: string | null;
}

/** Why reading stopped early: the bytes at `where` are not a record. */
export interface ReadProblem {
  shard: number;
  /** sequence of the last record yielded before the problem (0: none) */
  afterSequence: number;
  /** file and byte offset, or database and shard */
  where: string;
  reason: string;
  /**
   * an incomplete or zero-filled last frame at the end of the last segment: the shape of a
   * write that was never acknowledged (FileJournal.open cuts it). Never set for PostgreSQL.
   */
  torn: boolean;
}

export interface ReadBatch {
  records: RawRecord[];
  /** set on the last batch when reading stopped at unreadable bytes */
  problem: ReadProblem | null;
}

/** Progress callback: storage units read so far (bytes for files, rows for PostgreSQL). */
export type OnUnits = (units: number) => void;

const FRAME_HEADER_BYTES = 12;
const READ_CHUNK_BYTES = 8 * 1024 * 1024;
const SEGMENT_RE = /^journal-(\d{12})\.seg$/;
const SHARD_DIR_RE = /^shard-(\d{3,})$/;
const BODY_FIXED_BYTES = 34;

// ---------------------------------------------------------------------------------------------
// Embedded journal files

export interface SegmentFile {
  path: string;
  firstSeq: number;
  bytes: number;
}

/** Shards that have a directory under `dataDir`, ascending. */
export async function listFileShards(dataDir: string): Promise<number[]> {
  const names = await readdir(dataDir);
  const shards: number[] = [];
  for (const name of names) {
    const m = SHARD_DIR_RE.exec(name);
    if (m?.[1] !== undefined && shardDirName(Number(m[1])) === name) shards.push(Number(m[1]));
  }
  return shards.sort((a, b) => a - b);
}

/** A shard's segment files in the order their names give (first sequence), with sizes. */
export async function listSegments(dataDir: string, shard: number): Promise<SegmentFile[]> {
  const dir = join(dataDir, shardDirName(shard));
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  const segments: SegmentFile[] = [];
  for (const name of names) {
    const m = SEGMENT_RE.exec(name);
    if (m?.[1] === undefined) continue;
    const path = join(dir, name);
    segments.push({ path, firstSeq: Number(m[1]), bytes: (await stat(path)).size });
  }
  return segments.sort((a, b) => a.firstSeq - b.firstSeq);
}

/**
 * Streams a shard's records from its segment files with large sequential reads, one batch per
 * read. Stops at the first bytes that are not a frame of records and reports them once.
 */
export async function* readFileShard(
  dataDir: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<ReadBatch> {
  const segments = await listSegments(dataDir, shard);
  const cursor = { shard, afterSequence: 0, units: 0, onUnits };
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (seg === undefined) break;
    const handle = await open(seg.path, 'r');
    try {
      for await (const batch of readSegment(handle, seg, i === segments.length - 1, cursor)) {
        yield batch;
        if (batch.problem !== null) return;
      }
    } finally {
      await handle.close();
    }
  }
}

interface FileCursor {
  shard: number;
  afterSequence: number;
  units: number;
  onUnits: OnUnits;
}

/** Walks one segment frame by frame through a sliding buffer that grows only for huge frames. */
async function* readSegment(
  handle: FileHandle,
  seg: SegmentFile,
  last: boolean,
  cur: FileCursor,
): AsyncGenerator<ReadBatch> {
  const size = (await handle.stat()).size;
  let buf: Buffer = Buffer.allocUnsafe(Math.min(READ_CHUNK_BYTES, Math.max(size, 1)));
  let base = 0; // file offset of buf[0]
  let filled = 0;
  while (base + filled < size || filled > 0) {
    if (base + filled < size) {
      const want = Math.min(buf.length - filled, size - base - filled);
      await readFully(handle, buf, filled, want, base + filled);
      filled += want;
    }
    const records: RawRecord[] = [];
    const out = parseFrames(buf, filled, size - base, records, cur);
    cur.units += out.consumed;
    cur.onUnits(cur.units);
    const atEof = base + filled >= size;
    if (typeof out.problem === 'string' || (atEof && out.consumed < filled)) {
      const at = base + out.consumed;
      const reason = typeof out.problem === 'string' ? out.problem : 'truncated frame';
      const torn = last && isTornTail(buf.subarray(out.consumed, filled), out.problem);
      yield { records, problem: problemAt(cur, `${seg.path} byte ${at}`, reason, torn) };
      return;
    }
    if (records.length > 0) yield { records, problem: null };
    buf.copy(buf, 0, out.consumed, filled);
    base += out.consumed;
    filled -= out.consumed;
    if (atEof && filled === 0) return;
    if (out.need > buf.length) buf = grow(buf, filled, out.need);
  }
}

function grow(buf: Buffer, filled: number, need: number): Buffer {
  const next = Buffer.allocUnsafe(need);
  buf.copy(next, 0, 0, filled);
  return next;
}

function problemAt(cur: FileCursor, where: string, reason: string, torn: boolean): ReadProblem {
  return { shard: cur.shard, afterSequence: cur.afterSequence, where, reason, torn };
}

/**
 * A torn write leaves an incomplete last frame, or file space the kernel extended but never
 * filled (zeros). A complete frame whose records do not parse or hash is not torn: it is
 * reported as corruption, so an edited last frame cannot hide as a crash.
 */
function isTornTail(rest: Buffer, problem: string | null): boolean {
  if (problem === null || problem.startsWith('incomplete')) return true;
  for (let i = 0; i < rest.length; i++) if (rest[i] !== 0) return false;
  return true;
}

interface ParseOutcome {
  /** bytes of whole frames parsed */
  consumed: number;
  /** a frame that is not one, or null when the buffer simply ends inside a frame */
  problem: string | null;
  /** bytes the next frame needs in the buffer */
  need: number;
}

/** Parses the complete frames at the start of buf[0, filled). */
function parseFrames(
  buf: Buffer,
  filled: number,
  fileLeft: number,
  records: RawRecord[],
  cur: FileCursor,
): ParseOutcome {
  let pos = 0;
  while (pos + FRAME_HEADER_BYTES <= filled) {
    if (buf.readUInt32LE(pos) !== FRAME_MAGIC) {
      return { consumed: pos, problem: 'bad frame magic', need: 0 };
    }
    const frameBytes = buf.readUInt32LE(pos + 4);
    const count = buf.readUInt32LE(pos + 8);
    if (frameBytes < FRAME_HEADER_BYTES + 1 || count < 1) {
      return { consumed: pos, problem: 'bad frame header', need: 0 };
    }
    if (pos + frameBytes > fileLeft) {
      const problem = `incomplete frame: ${frameBytes} bytes, ${fileLeft - pos} left in the file`;
      return { consumed: pos, problem, need: 0 };
    }
    if (pos + frameBytes > filled) return { consumed: pos, problem: null, need: frameBytes };
    const frame = buf.subarray(pos, pos + frameBytes);
    const before = records.length;
    const problem = parseFrameRecords(frame, count, records);
    if (problem !== null) {
      records.length = before;
      return { consumed: pos, problem, need: 0 };
    }
    const lastRecord = records[records.length - 1];
    if (lastRecord !== undefined) cur.afterSequence = lastRecord.entry.sequence;
    pos += frameBytes;
  }
  return { consumed: pos, problem: null, need: FRAME_HEADER_BYTES };
}

/** Exactly `count` records must fill the frame after its header. */
function parseFrameRecords(frame: Buffer, count: number, records: RawRecord[]): string | null {
  let off = FRAME_HEADER_BYTES;
  for (let n = 0; n < count; n++) {
    const rec = readRecord(frame, off);
    if (typeof rec === 'string') return `record ${n} at frame offset ${off}: ${rec}`;
    records.push(rec.record);
    off = rec.end;
  }
  if (off !== frame.length) return `frame holds ${frame.length - off} bytes after ${count} records`;
  return null;
}

/**
 * One record at `off`. decodeEntry parses and hashes in one pass; when the stored hash differs
 * it refuses, so the record is parsed again from a copy carrying the recomputed hash: the
 * auditor then sees the entry, the stored hash and the hash of the stored bytes.
 */
function readRecord(buf: Buffer, off: number): { record: RawRecord; end: number } | string {
  const rec = decodeEntry(buf, off);
  if (rec.ok) {
    const prevKey = buf.toString('latin1', off, off + HASH_BYTES);
    return { record: { entry: rec.entry, prevKey, hashKey: rec.hashKey, bytesKey: rec.hashKey },
      end: rec.end };
  }
  if (rec.error !== 'bad_hash') return rec.error;
  const end = recordEnd(buf, off);
  if (end < 0) return 'truncated';
  const copy = Buffer.from(buf.subarray(off, end));
  const bodyEnd = copy.length - HASH_BYTES;
  const computed = createHash('sha256').update(copy.subarray(0, bodyEnd)).digest();
  computed.copy(copy, bodyEnd);
  const again = decodeEntry(copy, 0);
  if (!again.ok) return again.error;
  const record: RawRecord = {
    entry: again.entry,
    prevKey: copy.toString('latin1', 0, HASH_BYTES),
    hashKey: buf.toString('latin1', end - HASH_BYTES, end),
    bytesKey: computed.toString('latin1'),
  };
  return { record, end };
}

/** End of the record at `off` from its length fields (journal-codec layout), or -1. */
function recordEnd(buf: Buffer, off: number): number {
  let p = off + HASH_BYTES + BODY_FIXED_BYTES;
  for (let i = 0; i < 5; i++) {
    if (p + 2 > buf.length) return -1;
    p += 2 + buf.readUInt16LE(p);
  }
  if (p + 4 > buf.length) return -1;
  p += 4 + buf.readUInt32LE(p);
  return p + HASH_BYTES <= buf.length ? p + HASH_BYTES : -1;
}

async function readFully(
  handle: FileHandle,
  buf: Buffer,
  at: number,
  len: number,
  pos: number,
): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await handle.read(buf, at + done, len - done, pos + done);
    if (bytesRead <= 0) throw new Error(`journal-reader: file shrank at byte ${pos + done}`);
    done += bytesRead;
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

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
 * binary)` on a connection of its own, one batch per network chunk. A row that cannot be
 * decoded ends the stream with a problem. The connection is closed however the loop ends.
 */
export async function* readPgShard(
  url: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<ReadBatch> {
  if (!Number.isSafeInteger(shard) || shard < 0) throw new RangeError(`bad shard ${shard}`);
  const client = new pg.Client({ connectionString: url, application_name: 'ledger-audit' });
  await client.connect();
  let records: RawRecord[] = [];
  let rows = 0;
  let afterSequence = 0;
  const decoder = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => {
    const r = readJournalRow(row);
    records.push({ entry: r.entry, prevKey: r.prevKey, hashKey: r.hashKey, bytesKey: null });
  });
  try {
    // COPY takes no bind parameters; `shard` is a checked safe integer.
    const stream = client.query(copyTo(
      `COPY (SELECT ${JOURNAL_COLUMN_LIST} FROM journal WHERE shard = ${shard} ` +
        'ORDER BY sequence) TO STDOUT (FORMAT binary)'));
    for await (const chunk of stream) {
      const problem = pushChunk(decoder, chunk as Buffer, shard, afterSequence, records);
      rows += records.length;
      const last = records[records.length - 1];
      if (last !== undefined) afterSequence = last.entry.sequence;
      onUnits(rows);
      const batch: ReadBatch = { records, problem };
      records = [];
      yield batch;
      if (problem !== null) return;
    }
    decoder.end();
  } finally {
    await client.end().catch(() => undefined); // the stream's own error is what the caller sees
  }
}

function pushChunk(
  decoder: CopyBinaryDecoder,
  chunk: Buffer,
  shard: number,
  afterSequence: number,
  records: RawRecord[],
): ReadProblem | null {
  try {
    decoder.push(chunk);
    return null;
  } catch (err) {
    const last = records[records.length - 1];
    const reason = err instanceof Error ? err.message : String(err);
    return {
      shard, afterSequence: last?.entry.sequence ?? afterSequence,
      where: `journal row after shard ${shard} sequence ${last?.entry.sequence ?? afterSequence}`,
      reason, torn: false,
    };
  }
}
