// The embedded journal's write-ahead log: one file per FileJournal (a worker's shards), so that
// a group commit costs one fdatasync however many shard files it touched. Holds the frames
// written to shard files since they were last synced (a checkpoint); open() puts them back.

import { createHash } from 'node:crypto';
import { open, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeEntry } from '../protocol/journal-codec.js';
import { HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';
import {
  FRAME_HEADER_BYTES, JournalCorruptError, checkFrame, fsyncDir, listSegments, readdirIfAny,
  segmentName, writeFully, type Cursor,
} from './journal-segments.js';

/*
 * Why. A group of payments touches one frame per shard. Synced file by file, a group spread
 * over 8 files cost 400-500 us of CPU in fdatasync against 70-100 us for the same bytes in one
 * file (2-core bench VM). bench/journal-file.bench.ts, groups of 100 entries over 32 shards,
 * two runs alternated with the per-file syncs: 2,160-2,206 -> 948-1,109 us of CPU per group,
 * commit p50 1.69-1.86 -> 0.83-0.84 ms. The price: every byte is written twice, and a group
 * of one shard costs about as much as before (one sync either way).
 *
 * Layout: `${dir}/wal/wal-<16 hex of SHA-256 of the shard list>.log`, little-endian:
 *
 *   header   magic u32 WAL_MAGIC | bytes u32 (whole header) | shards u32 | pad u32
 *            per shard: shard u32 | pad u32 | segment f64 | size f64 | sequence f64 | key 32B
 *            SHA-256 of everything before it (32 bytes)
 *   entries  magic u32 ENTRY_MAGIC | shard u32 | segment f64 | offset f64 | the shard frame
 *
 * The header is the checkpoint: where each shard's files stood when they were last synced
 * (segment = first sequence of the newest segment then, 0 for none; size = its bytes; the
 * chain head). Entries are the frames written since, each with the place it was written to.
 *
 * A commit writes its frames to the shard files (no sync) and the same frames as entries here,
 * then syncs this file alone: then the group is durable. A checkpoint syncs the shard files
 * written since the last one and replaces this file with a new header (temp file, sync,
 * rename, sync of the directory), so a crash leaves either the old log or the new one.
 *
 * Recovery (recoverWals, before the shard files are read): per shard of the log, drop whatever
 * the files hold after the checkpoint (truncate the header's segment to its size, delete newer
 * segments), then write the log's entries back where they were and sync. The log's valid
 * entries end at the first that does not verify (a torn last group, never acknowledged). Entries
 * are hash-chained records like the files, checked from the header's head onwards, all before
 * any file is touched; a valid entry after an invalid one is damage, not a torn tail: refused.
 */

export const WAL_DIR = 'wal';
const WAL_MAGIC = 0x4c4a5731; // 'LJW1'
const ENTRY_MAGIC = 0x4c4a5745; // 'LJWE'
const HEADER_FIXED = 16;
const HEADER_PER_SHARD = 8 + 3 * 8 + HASH_BYTES;
export const WAL_ENTRY_HEADER = 4 + 4 + 8 + 8;
const WAL_RE = /^wal-[0-9a-f]{16}\.log$/;
const MAGIC_BYTES = Buffer.alloc(4);
MAGIC_BYTES.writeUInt32LE(ENTRY_MAGIC);

/** Where a shard's files stood at a checkpoint. `key`: the head hash in latin1 form. */
export interface WalShard {
  shard: number;
  segment: number;
  size: number;
  sequence: number;
  key: string;
}

export function walName(shards: readonly number[]): string {
  const list = [...shards].sort((a, b) => a - b).join(',');
  return `wal-${createHash('sha256').update(list).digest('hex').slice(0, 16)}.log`;
}

export function encodeWalHeader(shards: readonly WalShard[]): Buffer {
  const bytes = HEADER_FIXED + shards.length * HEADER_PER_SHARD + HASH_BYTES;
  const buf = Buffer.alloc(bytes);
  buf.writeUInt32LE(WAL_MAGIC, 0);
  buf.writeUInt32LE(bytes, 4);
  buf.writeUInt32LE(shards.length, 8);
  let at = HEADER_FIXED;
  for (const s of shards) {
    buf.writeUInt32LE(s.shard, at);
    buf.writeDoubleLE(s.segment, at + 8);
    buf.writeDoubleLE(s.size, at + 16);
    buf.writeDoubleLE(s.sequence, at + 24);
    buf.write(s.key, at + 32, HASH_BYTES, 'latin1');
    at += HEADER_PER_SHARD;
  }
  createHash('sha256').update(buf.subarray(0, at)).digest().copy(buf, at);
  return buf;
}

/** The header's shards and its length, or null when it is not a whole, intact header. */
export function decodeWalHeader(buf: Buffer): { shards: WalShard[]; end: number } | null {
  if (buf.length < HEADER_FIXED || buf.readUInt32LE(0) !== WAL_MAGIC) return null;
  const bytes = buf.readUInt32LE(4);
  const count = buf.readUInt32LE(8);
  if (bytes !== HEADER_FIXED + count * HEADER_PER_SHARD + HASH_BYTES || bytes > buf.length) {
    return null;
  }
  const body = bytes - HASH_BYTES;
  const sum = createHash('sha256').update(buf.subarray(0, body)).digest();
  if (!sum.equals(buf.subarray(body, bytes))) return null;
  const shards: WalShard[] = [];
  for (let at = HEADER_FIXED; at < body; at += HEADER_PER_SHARD) {
    shards.push({
      shard: buf.readUInt32LE(at), segment: buf.readDoubleLE(at + 8),
      size: buf.readDoubleLE(at + 16), sequence: buf.readDoubleLE(at + 24),
      key: buf.toString('latin1', at + 32, at + 32 + HASH_BYTES),
    });
  }
  return { shards, end: bytes };
}

/** Writes one entry's header at `at` of `out` (the frame follows it). */
export function writeWalEntryHeader(out: Buffer, at: number, shard: number, segment: number,
  offset: number): void {
  out.writeUInt32LE(ENTRY_MAGIC, at);
  out.writeUInt32LE(shard, at + 4);
  out.writeDoubleLE(segment, at + 8);
  out.writeDoubleLE(offset, at + 16);
}

/** One FileJournal's log file: appended by commits, replaced by checkpoints. */
export class WalFile {
  private handle: FileHandle | null = null;
  /** bytes in the file (header included); 0 before the first checkpoint made it */
  size = 0;
  /** when the header was written (ms since epoch); 0, always due, before the first */
  checkpointAt = 0;

  constructor(
    private readonly dir: string,
    private readonly name: string,
  ) {}

  get path(): string {
    return join(this.dir, this.name);
  }

  /** Starts a new log whose header is `shards` and makes it the log (atomic replacement). */
  async checkpoint(shards: readonly WalShard[]): Promise<void> {
    const header = encodeWalHeader(shards);
    const tmp = `${this.path}.tmp`;
    const handle = await open(tmp, 'w');
    try {
      await writeFully(handle, header, 0);
      await handle.datasync();
      await rename(tmp, this.path);
      await fsyncDir(this.dir);
    } catch (err) {
      await handle.close().catch(() => undefined); // the write or rename error is the news
      throw err;
    }
    const old = this.handle;
    this.handle = handle;
    this.size = header.length;
    this.checkpointAt = Date.now();
    await old?.close();
  }

  /** Appends `bytes` and syncs: once this resolves, they survive a crash. */
  async append(bytes: Buffer): Promise<void> {
    const handle = this.handle;
    if (handle === null) throw new Error('write-ahead log is not open');
    await writeFully(handle, bytes, this.size);
    await handle.datasync();
    this.size += bytes.length;
  }

  /** Closes the file; with `remove`, deletes it (every shard file it covered is synced). */
  async close(remove: boolean): Promise<void> {
    const handle = this.handle;
    this.handle = null;
    await handle?.close();
    if (!remove) return;
    try {
      await unlink(this.path);
    } catch (err) {
      // Gone already (the directory removed under a stopping pod): nothing left to delete.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    await fsyncDir(this.dir);
  }
}

/** The write-ahead logs in `walDir`, by name. */
async function logNames(walDir: string): Promise<string[]> {
  return (await readdirIfAny(walDir)).filter((n) => WAL_RE.test(n)).sort();
}

/** How many write-ahead logs `dir` holds (0 when cleanly closed or never written). */
export async function unsettledLogs(dir: string): Promise<number> {
  return (await logNames(join(dir, WAL_DIR))).length;
}

/**
 * Puts back what logs in `${dir}/wal` hold into the shard files, syncs them, and deletes each
 * log it settled: every log when `shards` is null (a pod starting), else only logs whose shards
 * are all among `shards` (a worker reopening its own). A log that covers some of `shards` and
 * also others is refused: settle the directory first. Returns the shards it put entries back to.
 */
export async function recoverWals(
  dir: string,
  shards: readonly number[] | null,
  shardDir: (shard: number) => string,
): Promise<number[]> {
  const walDir = join(dir, WAL_DIR);
  const names = await logNames(walDir);
  const mine = shards === null ? null : new Set(shards);
  const repaired: number[] = [];
  for (const name of names) {
    const path = join(walDir, name);
    const bytes = await readFile(path);
    const header = decodeWalHeader(bytes);
    if (header === null) throw new JournalCorruptError(-1, path, 0, 'bad write-ahead log header');
    const covered = header.shards.map((s) => s.shard);
    if (mine !== null && !covered.every((s) => mine.has(s))) {
      if (covered.some((s) => mine.has(s))) {
        throw new Error(`write-ahead log ${path} also covers shards this journal does not ` +
          'open; start the pod once with its previous LEDGER_WORKERS, or settle the data ' +
          'directory (settleFileJournal) before opening these shards');
      }
      continue;
    }
    repaired.push(...await replayLog(path, bytes, header, shardDir));
    await unlink(path);
  }
  if (names.length > 0) await fsyncDir(walDir);
  return repaired;
}

interface Placed {
  /** segment first sequence → its handle, opened while putting entries back */
  handles: Map<number, { handle: FileHandle; size: number }>;
  dir: string;
}

interface LogEntry {
  shard: number;
  segment: number;
  offset: number;
  frame: Buffer;
}

/**
 * The log's valid entries, each verified against its shard's chain from the header on. They
 * end at the first entry that does not verify: a torn last group. If a valid entry follows
 * that one, the log was damaged in the middle: refused, since putting back the entries before
 * the damage would drop acknowledged ones after it.
 */
function validEntries(path: string, bytes: Buffer, header: { shards: WalShard[]; end: number }):
  LogEntry[] {
  const cursors = new Map<number, Cursor>(
    header.shards.map((s) => [s.shard, { sequence: s.sequence, key: s.key }]));
  const entries: LogEntry[] = [];
  const scratch: JournalEntry[] = [];
  let at = header.end;
  for (;;) {
    const e = entryAt(bytes, at);
    const cur = e === null ? undefined : cursors.get(e.shard);
    if (e === null || cur === undefined) break;
    const next = { ...cur };
    scratch.length = 0;
    if (typeof checkFrame(e.frame, e.shard, next, null, scratch) === 'string') break;
    cursors.set(e.shard, next);
    entries.push(e);
    at += WAL_ENTRY_HEADER + e.frame.length;
  }
  for (let i = bytes.indexOf(MAGIC_BYTES, at + 1); i >= 0; i = bytes.indexOf(MAGIC_BYTES, i + 1)) {
    const e = entryAt(bytes, i);
    if (e !== null && decodeEntry(e.frame, FRAME_HEADER_BYTES).ok) {
      throw new JournalCorruptError(e.shard, path, at, 'write-ahead log damaged: a valid entry ' +
        `at byte ${i} follows one that does not verify`);
    }
  }
  return entries;
}

/** The entry whose header starts at `at`, if its header is plausible and its frame whole. */
function entryAt(bytes: Buffer, at: number): LogEntry | null {
  const start = at + WAL_ENTRY_HEADER;
  if (start + FRAME_HEADER_BYTES > bytes.length || bytes.readUInt32LE(at) !== ENTRY_MAGIC) {
    return null;
  }
  const frameBytes = bytes.readUInt32LE(start + 4);
  if (frameBytes < FRAME_HEADER_BYTES || start + frameBytes > bytes.length) return null;
  return {
    shard: bytes.readUInt32LE(at + 4), segment: bytes.readDoubleLE(at + 8),
    offset: bytes.readDoubleLE(at + 16), frame: bytes.subarray(start, start + frameBytes),
  };
}

/** Verifies the log, then resets its shards to the checkpoint and writes its entries back. */
async function replayLog(
  path: string,
  bytes: Buffer,
  header: { shards: WalShard[]; end: number },
  shardDir: (shard: number) => string,
): Promise<number[]> {
  const entries = validEntries(path, bytes, header); // before any file is touched
  const placed = new Map<number, Placed>();
  try {
    for (const s of header.shards) placed.set(s.shard, await resetShard(s, shardDir(s.shard)));
    for (const e of entries) {
      await putBack(placed.get(e.shard) as Placed, e, path);
    }
  } finally {
    await Promise.all([...placed.values()].map(async (p) => {
      await Promise.all([...p.handles.values()].map(async (h) => {
        await h.handle.datasync();
        await h.handle.close();
      }));
      await fsyncDir(p.dir); // segments it created or deleted
    }));
  }
  return header.shards.map((s) => s.shard);
}

/** Drops what the shard's files hold after the checkpoint; where its chain stood then. */
async function resetShard(s: WalShard, dir: string): Promise<Placed> {
  const handles = new Map<number, { handle: FileHandle; size: number }>();
  for (const seg of await listSegments(dir)) {
    if (seg.firstSeq > s.segment) await unlink(seg.path);
  }
  if (s.segment > 0) {
    const handle = await open(join(dir, segmentName(s.segment)), 'r+');
    const size = (await handle.stat()).size;
    if (size < s.size) {
      await handle.close();
      throw new JournalCorruptError(s.shard, join(dir, segmentName(s.segment)), size,
        `segment holds ${size} bytes, fewer than the ${s.size} synced at the last checkpoint`);
    }
    await handle.truncate(s.size);
    handles.set(s.segment, { handle, size: s.size });
  }
  return { handles, dir };
}

async function putBack(p: Placed, e: LogEntry, path: string): Promise<void> {
  const { segment, offset, frame } = e;
  let h = p.handles.get(segment);
  if (h === undefined) {
    if (offset !== 0) {
      throw new JournalCorruptError(e.shard, path, 0, `entry at offset ${offset} of segment ` +
        `${segment}, which the log never started`);
    }
    h = { handle: await open(join(p.dir, segmentName(segment)), 'w+'), size: 0 };
    p.handles.set(segment, h);
  }
  if (offset !== h.size) {
    throw new JournalCorruptError(e.shard, path, 0, `entry at offset ${offset} of segment ` +
      `${segment}, which holds ${h.size} bytes`);
  }
  await writeFully(h.handle, frame, offset);
  h.size += frame.length;
}

