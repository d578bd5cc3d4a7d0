// Raw journal readers for the auditor: stream a shard's stored records (embedded segment files
// here, PostgreSQL in pg-journal-reader) in storage order, each hashed; they check no chain,
// sequence or hash: judging is the auditor's.

import { open, readdir, stat, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { RecordScanner } from '../protocol/journal-codec.js';
import { FRAME_MAGIC, shardDirName } from './journal-file.js';
import { readdirIfAny } from './journal-segments.js';
import {
  RecordBatch,
  detachBatch,
  type OnUnits,
  type ReadBatch,
  type ReadProblem,
} from './record-batch.js';

export {
  RecordBatch,
  type OnUnits,
  type RawRecord,
  type ReadBatch,
  type ReadProblem,
} from './record-batch.js';
export {
  databaseOfShard,
  listPgShards,
  pgShardRows,
  readPgShard,
  scanPgShard,
} from './pg-journal-reader.js';

const FRAME_HEADER_BYTES = 12;
const READ_CHUNK_BYTES = 8 * 1024 * 1024;
/**
 * A batch ends after the frame that reaches this many records: small enough that its pooled
 * entries stay in the CPU caches between parsing and auditing, large enough to amortise a yield.
 */
const BATCH_RECORDS = 2048;
const SEGMENT_RE = /^journal-(\d{12})\.seg$/;
const SHARD_DIR_RE = /^shard-(\d{3,})$/;

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
  const segments: SegmentFile[] = [];
  for (const name of await readdirIfAny(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m?.[1] === undefined) continue;
    const path = join(dir, name);
    segments.push({ path, firstSeq: Number(m[1]), bytes: (await stat(path)).size });
  }
  return segments.sort((a, b) => a.firstSeq - b.firstSeq);
}

/**
 * Streams a shard's records from its segment files with large sequential reads, in batches of
 * whole frames (see RecordBatch: reused, valid until the next). Stops at the first bytes that
 * are not a frame of records and reports them once, as the last batch's problem.
 */
export async function* scanFileShard(
  dataDir: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<RecordBatch> {
  const segments = await listSegments(dataDir, shard);
  const cur: FileCursor = { shard, afterSequence: 0, units: 0, onUnits,
    batch: new RecordBatch(), scanner: new RecordScanner() };
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i];
    if (seg === undefined) break;
    const handle = await open(seg.path, 'r');
    try {
      for await (const batch of scanSegment(handle, seg, i === segments.length - 1, cur)) {
        yield batch;
        if (batch.problem !== null) return;
      }
    } finally {
      await handle.close();
    }
  }
}

/** scanFileShard with records that outlive the reader (for tools and tests; slower). */
export async function* readFileShard(
  dataDir: string,
  shard: number,
  onUnits: OnUnits = () => undefined,
): AsyncGenerator<ReadBatch> {
  for await (const batch of scanFileShard(dataDir, shard, onUnits)) yield detachBatch(batch);
}

interface FileCursor {
  shard: number;
  afterSequence: number;
  units: number;
  onUnits: OnUnits;
  batch: RecordBatch;
  scanner: RecordScanner;
}

/** Walks one segment frame by frame through a sliding buffer that grows only for huge frames. */
async function* scanSegment(
  handle: FileHandle,
  seg: SegmentFile,
  last: boolean,
  cur: FileCursor,
): AsyncGenerator<RecordBatch> {
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
    const atEof = base + filled >= size;
    let out: ParseOutcome;
    let from = 0;
    do {
      cur.batch.reset(buf);
      out = parseFrames(buf, from, filled, size - base, cur);
      cur.units += out.consumed - from;
      cur.onUnits(cur.units);
      from = out.consumed;
      if (typeof out.problem === 'string' || (!out.full && atEof && out.consumed < filled)) {
        const reason = typeof out.problem === 'string' ? out.problem : 'truncated frame';
        const torn = last && isTornTail(buf.subarray(out.consumed, filled), out.problem);
        cur.batch.problem = problemAt(cur, `${seg.path} byte ${base + out.consumed}`, reason, torn);
        yield cur.batch;
        return;
      }
      if (cur.batch.count > 0) yield cur.batch;
    } while (out.full);
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
 * filled (zeros). A complete frame whose records do not parse is not torn: it is reported as
 * corruption, so an edited last frame cannot hide as a crash.
 */
function isTornTail(rest: Buffer, problem: string | null): boolean {
  if (problem === null || problem.startsWith('incomplete')) return true;
  for (let i = 0; i < rest.length; i++) if (rest[i] !== 0) return false;
  return true;
}

interface ParseOutcome {
  /** offset in the buffer just past the whole frames parsed */
  consumed: number;
  /** a frame that is not one, or null when the buffer simply ends inside a frame */
  problem: string | null;
  /** bytes the next frame needs in the buffer */
  need: number;
  /** the batch is full: more whole frames may follow at `consumed` */
  full: boolean;
}

/** Parses whole frames of buf[from, filled) into cur.batch until it is full. */
function parseFrames(
  buf: Buffer,
  from: number,
  filled: number,
  fileLeft: number,
  cur: FileCursor,
): ParseOutcome {
  let pos = from;
  while (pos + FRAME_HEADER_BYTES <= filled) {
    if (cur.batch.count >= BATCH_RECORDS) {
      return { consumed: pos, problem: null, need: 0, full: true };
    }
    if (buf.readUInt32LE(pos) !== FRAME_MAGIC) {
      return { consumed: pos, problem: 'bad frame magic', need: 0, full: false };
    }
    const frameBytes = buf.readUInt32LE(pos + 4);
    const count = buf.readUInt32LE(pos + 8);
    if (frameBytes < FRAME_HEADER_BYTES + 1 || count < 1) {
      return { consumed: pos, problem: 'bad frame header', need: 0, full: false };
    }
    if (pos + frameBytes > fileLeft) {
      const problem = `incomplete frame: ${frameBytes} bytes, ${fileLeft - pos} left in the file`;
      return { consumed: pos, problem, need: 0, full: false };
    }
    if (pos + frameBytes > filled) {
      return { consumed: pos, problem: null, need: frameBytes, full: false };
    }
    const problem = parseFrameRecords(buf, pos, pos + frameBytes, count, cur);
    if (problem !== null) return { consumed: pos, problem, need: 0, full: false };
    cur.afterSequence = cur.batch.lastSequence(cur.afterSequence);
    pos += frameBytes;
  }
  return { consumed: pos, problem: null, need: FRAME_HEADER_BYTES, full: false };
}

/** Exactly `count` records must fill buf[start + header, end); else none of them is kept. */
function parseFrameRecords(
  buf: Buffer,
  start: number,
  end: number,
  count: number,
  cur: FileCursor,
): string | null {
  const { batch, scanner } = cur;
  const before = batch.count;
  let off = start + FRAME_HEADER_BYTES;
  for (let n = 0; n < count; n++) {
    const error = scanner.read(buf, off, end, batch.slot());
    if (error !== null) {
      batch.truncate(before);
      return `record ${n} at frame offset ${off - start}: ${error}`;
    }
    batch.add(scanner.key, off, scanner.hashAt);
    off = scanner.end;
  }
  if (off !== end) {
    batch.truncate(before);
    return `frame holds ${end - off} bytes after ${count} records`;
  }
  return null;
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
