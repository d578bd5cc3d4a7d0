// Embedded journal: per-shard append-only segment files, group commit with one write and one
// fsync per touched shard file. Never acknowledges a group before it is fsynced; no business rules.

import { mkdir, open, readdir, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EntryEncoder, decodeEntry, hashKey } from '../protocol/journal-codec.js';
import { HASH_BYTES, ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead, JournalSink } from './journal.js';

/*
 * Layout: `${dir}/shard-NNN/journal-<first sequence, 12 digits>.seg`. A segment is a run of
 * frames, one per committed group and shard:
 *
 *   0  magic        u32  FRAME_MAGIC
 *   4  frameBytes   u32  the whole frame, header included
 *   8  count        u32  records in the frame (>= 1)
 *   12 records      journal-codec records, hash-chained across frames and segments
 *
 * Every record carries SHA-256(prevHash ‖ body), so the frame needs no CRC of its own: a frame
 * is valid when its header is plausible and exactly `count` valid, chained records fill it.
 *
 * Failure model. A group is acknowledged only after fdatasync of every touched file (fdatasync
 * also persists the grown file size). If a write or fsync fails the journal fails closed: this
 * and every later commit rejects until open() runs again. After an fsync failure the kernel
 * may have dropped the dirty pages while the page cache still shows them, so the process must
 * rebuild its state from what open() + replay() read back from disk, never from memory.
 * A torn last frame (never acknowledged) is cut by open(). Limitation: an edit of the very last
 * frame of a shard is indistinguishable from a torn write here; anchors outside the file
 * (snapshots' heads, the auditor's copies) catch that.
 */

export const FRAME_MAGIC = 0x4c4a4731; // 'LJG1' read as little-endian bytes "1GJL"
const FRAME_HEADER_BYTES = 12;
const DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024;
const READ_CHUNK_BYTES = 8 * 1024 * 1024;
const SEQ_DIGITS = 12;
const SEGMENT_RE = /^journal-(\d{12})\.seg$/;
const ZERO_KEY = hashKey(ZERO_HASH);

export interface FileJournalOptions {
  /** roll over to a new segment once a segment would pass this size (default 64 MiB) */
  segmentBytes?: number;
  /** operator-facing events: a torn tail cut at open */
  log?: (event: string, fields: Record<string, unknown>) => void;
}

/** Thrown when the files contradict themselves; names shard, file and byte offset. */
export class JournalCorruptError extends Error {
  readonly code = 'journal_corrupt';
  constructor(
    readonly shard: number,
    readonly file: string,
    readonly offset: number,
    readonly reason: string,
  ) {
    super(`journal corrupt: shard ${shard}, ${file}, byte offset ${offset}: ${reason}`);
    this.name = 'JournalCorruptError';
  }
}

interface Segment {
  firstSeq: number;
  path: string;
  /** valid bytes (everything is valid after open() cut a torn tail) */
  size: number;
}

interface ShardFiles {
  shard: number;
  dir: string;
  segments: Segment[];
  /** the last segment, open for positional writes; null until the first write */
  handle: FileHandle | null;
  sequence: number;
  /** head hash in latin1 form (journal-codec hashKey) */
  key: string;
  /** sequence including commits accepted but not yet durable */
  pendingSeq: number;
}

/** A chain position while scanning: advanced only frame by frame. */
interface Cursor {
  sequence: number;
  key: string;
  /** epoch of the last entry passed, if any */
  epoch?: number;
}

interface ScanOutcome {
  validEnd: number;
  size: number;
  problem: string | null;
}

export function shardDirName(shard: number): string {
  return `shard-${String(shard).padStart(3, '0')}`;
}

export function segmentName(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(SEQ_DIGITS, '0')}.seg`;
}

export class FileJournal implements JournalSink {
  private readonly segmentBytes: number;
  private readonly log: NonNullable<FileJournalOptions['log']>;
  private readonly shards = new Map<number, ShardFiles>();
  private readonly encoder = new EntryEncoder(1024 * 1024);
  /** reused per group: entries by shard, in first-touched order */
  private readonly groups = new Map<number, JournalEntry[]>();
  private epoch = 0;
  private state: 'new' | 'open' | 'failed' | 'closed' = 'new';
  private failure: unknown = null;
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    opts: FileJournalOptions = {},
  ) {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 4096 || segmentBytes > 2 ** 31) {
      throw new RangeError(`FileJournal: segmentBytes must be an integer in [4096, 2^31]`);
    }
    this.segmentBytes = segmentBytes;
    this.log = opts.log ?? (() => undefined);
  }

  async open(shards: readonly number[], epoch: number): Promise<void> {
    if (this.state === 'open') throw new Error('FileJournal.open: already open');
    await this.tail.catch(() => undefined);
    await this.closeHandles();
    this.shards.clear();
    this.epoch = epoch;
    await mkdirDurable(this.dir);
    const loaded = await Promise.all(shards.map((s) => this.loadShard(s)));
    for (const files of loaded) this.shards.set(files.shard, files);
    this.state = 'open';
    this.failure = null;
  }

  /** The embedded journal has one writer: the epoch it was opened with, for every shard. */
  epochOf(shard: number): number {
    this.files(shard);
    return this.epoch;
  }

  head(shard: number): ChainHead {
    const files = this.files(shard);
    return { sequence: files.sequence, hash: Buffer.from(files.key, 'latin1') };
  }

  /**
   * Queue one group; resolves once it is durable. Throws synchronously on a programmer error
   * (not open, unknown shard, wrong epoch, a sequence that does not continue the shard).
   */
  commit(entries: readonly JournalEntry[]): Promise<void> {
    if (this.state !== 'open') return Promise.reject(this.notWritable());
    this.acceptSequences(entries);
    const done = this.tail.then(() => this.commitNow(entries));
    this.tail = done.catch(() => undefined);
    return done;
  }

  async replay(
    shard: number,
    head: ChainHead,
    onEntry: (entry: JournalEntry) => void,
  ): Promise<ChainHead> {
    const files = this.files(shard);
    const from: Cursor = {
      sequence: head.sequence,
      key: head.sequence === 0 ? ZERO_KEY : hashKey(head.hash),
    };
    if (from.sequence > files.sequence) {
      throw new Error(`replay: shard ${shard} head ${from.sequence} is past the journal's ` +
        `durable head ${files.sequence}`);
    }
    const segments = files.segments.slice();
    let i = segments.length - 1;
    while (i >= 0 && (segments[i]?.firstSeq ?? 0) > from.sequence + 1) i--;
    if (i < 0 && segments.length > 0) {
      throw new Error(`replay: shard ${shard} journal does not reach back to ${from.sequence}`);
    }
    const cur = await this.seekCursor(files, segments, i, from);
    for (; i < segments.length; i++) {
      const seg = segments[i];
      if (seg === undefined) break;
      const out = await scanSegment(seg.path, shard, cur, seg.size, from, onEntry);
      if (out.problem !== null) {
        throw new JournalCorruptError(shard, seg.path, out.validEnd, out.problem);
      }
    }
    return { sequence: cur.sequence, hash: Buffer.from(cur.key, 'latin1') };
  }

  async close(): Promise<void> {
    await this.tail.catch(() => undefined);
    this.state = 'closed';
    await this.closeHandles();
  }

  // ---------------------------------------------------------------------------------------

  private files(shard: number): ShardFiles {
    const files = this.shards.get(shard);
    if (files === undefined) throw new Error(`FileJournal: shard ${shard} is not open`);
    return files;
  }

  private notWritable(): Error {
    if (this.state === 'failed') {
      return new Error('FileJournal failed earlier; reopen and rebuild from disk', {
        cause: this.failure,
      });
    }
    return new Error(`FileJournal is ${this.state}`);
  }

  /** Checks continuity against accepted-but-pending groups, then advances pendingSeq. */
  private acceptSequences(entries: readonly JournalEntry[]): void {
    const next = new Map<ShardFiles, number>();
    for (const e of entries) {
      const files = this.files(e.shard);
      const seq = next.get(files) ?? files.pendingSeq;
      if (e.sequence !== seq + 1) {
        throw new Error(`FileJournal.commit: shard ${e.shard} sequence ${e.sequence} does not ` +
          `follow ${seq}`);
      }
      if (e.epoch !== this.epoch) {
        throw new Error(`FileJournal.commit: entry epoch ${e.epoch} is not ours (${this.epoch})`);
      }
      next.set(files, e.sequence);
    }
    for (const [files, seq] of next) files.pendingSeq = seq;
  }

  private async commitNow(entries: readonly JournalEntry[]): Promise<void> {
    if (this.state !== 'open') throw this.notWritable();
    if (entries.length === 0) return;
    try {
      const frames = this.encodeGroup(entries);
      // allSettled, not all: no write may still be running once this group has failed.
      const results = await Promise.allSettled(frames.map((f) => this.writeFrame(f)));
      for (const r of results) if (r.status === 'rejected') throw r.reason;
    } catch (err) {
      this.state = 'failed';
      this.failure = err;
      throw err;
    }
  }

  /** Encodes one frame per touched shard into the reused encoder. */
  private encodeGroup(entries: readonly JournalEntry[]): PendingFrame[] {
    for (const list of this.groups.values()) list.length = 0;
    for (const e of entries) {
      let list = this.groups.get(e.shard);
      if (list === undefined) this.groups.set(e.shard, (list = []));
      list.push(e);
    }
    const enc = this.encoder;
    enc.reset();
    const spans: { files: ShardFiles; start: number; end: number; last: JournalEntry }[] = [];
    for (const [shard, list] of this.groups) {
      const last = list[list.length - 1];
      if (last === undefined) continue;
      const files = this.files(shard);
      const start = enc.reserve(FRAME_HEADER_BYTES);
      let key = files.key;
      for (const e of list) key = enc.appendOne(e, key);
      enc.writeUInt32At(start, FRAME_MAGIC);
      enc.writeUInt32At(start + 4, enc.length - start);
      enc.writeUInt32At(start + 8, list.length);
      spans.push({ files, start, end: enc.length, last });
    }
    const bytes = enc.bytes();
    return spans.map((s) => ({
      files: s.files,
      frame: bytes.subarray(s.start, s.end),
      firstSeq: s.files.sequence + 1,
      lastSeq: s.last.sequence,
      key: bytes.toString('latin1', s.end - HASH_BYTES, s.end),
    }));
  }

  /** One positional write and one fdatasync; then the shard's head advances. */
  private async writeFrame(f: PendingFrame): Promise<void> {
    const files = f.files;
    let seg = files.segments[files.segments.length - 1];
    if (seg === undefined || (seg.size > 0 && seg.size + f.frame.length > this.segmentBytes)) {
      seg = await this.createSegment(files, f.firstSeq);
    }
    let handle = files.handle;
    if (handle === null) files.handle = handle = await open(seg.path, 'r+');
    await writeFully(handle, f.frame, seg.size);
    await handle.datasync();
    seg.size += f.frame.length;
    files.sequence = f.lastSeq;
    files.key = f.key;
  }

  private async createSegment(files: ShardFiles, firstSeq: number): Promise<Segment> {
    if (files.handle !== null) {
      const old = files.handle;
      files.handle = null;
      await old.close();
    }
    const path = join(files.dir, segmentName(firstSeq));
    const handle = await open(path, 'wx+');
    files.handle = handle;
    await fsyncDir(files.dir);
    const seg: Segment = { firstSeq, path, size: 0 };
    files.segments.push(seg);
    return seg;
  }

  private async loadShard(shard: number): Promise<ShardFiles> {
    const dir = join(this.dir, shardDirName(shard));
    await mkdirDurable(dir);
    const segments = await listSegments(dir);
    const cur: Cursor = { sequence: 0, key: ZERO_KEY };
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      if (seg === undefined) break;
      if (seg.firstSeq !== cur.sequence + 1) {
        throw new JournalCorruptError(shard, seg.path, 0,
          `segment starts at sequence ${seg.firstSeq}, expected ${cur.sequence + 1}`);
      }
      const out = await scanSegment(seg.path, shard, cur, Infinity, null, null);
      seg.size = out.validEnd;
      if (out.problem === null) continue;
      if (i < segments.length - 1 || (await validFrameAfter(seg.path, out.validEnd))) {
        throw new JournalCorruptError(shard, seg.path, out.validEnd, out.problem);
      }
      await cutTornTail(seg.path, out.validEnd);
      this.log('journal_torn_tail_cut', {
        shard, file: seg.path, offset: out.validEnd, bytes: out.size - out.validEnd,
        reason: out.problem,
      });
    }
    this.checkEpoch(shard, dir, cur);
    const files: ShardFiles = {
      shard, dir, segments, handle: null, sequence: cur.sequence, key: cur.key,
      pendingSeq: cur.sequence,
    };
    return files;
  }

  private checkEpoch(shard: number, dir: string, cur: Cursor): void {
    // A journal written by a newer owner must not be appended to by an older one (fencing).
    if (cur.epoch !== undefined && cur.epoch > this.epoch) {
      throw new Error(`FileJournal.open: shard ${shard} in ${dir} was written at epoch ` +
        `${cur.epoch}, newer than ours (${this.epoch})`);
    }
  }

  /** The chain position just before segment i, checking `from` lies on the chain. */
  private async seekCursor(
    files: ShardFiles,
    segments: readonly Segment[],
    i: number,
    from: Cursor,
  ): Promise<Cursor> {
    if (from.sequence === files.sequence && from.key !== files.key) {
      throw new Error(`replay: shard ${files.shard} head hash differs from the journal's ` +
        `hash at sequence ${from.sequence}`);
    }
    const seg = segments[i];
    if (seg === undefined) return { sequence: from.sequence, key: from.key }; // no segments
    // Entries of segment i before `from` are verified against their own prevHash; the
    // link to `from` is checked when the scan reaches sequence from.sequence + 1.
    return { sequence: seg.firstSeq - 1, key: '' };
  }

  private async closeHandles(): Promise<void> {
    const handles: FileHandle[] = [];
    for (const files of this.shards.values()) {
      if (files.handle !== null) handles.push(files.handle);
      files.handle = null;
    }
    await Promise.all(handles.map((h) => h.close()));
  }
}

interface PendingFrame {
  files: ShardFiles;
  frame: Buffer;
  firstSeq: number;
  lastSeq: number;
  key: string;
}

/**
 * Reads one segment with large sequential reads and walks its frames, advancing `cur` one
 * whole valid frame at a time. With `from`, checks the link to it and hands entries past it
 * to onEntry. Stops at the first problem; `validEnd` is where the valid frames end.
 */
async function scanSegment(
  path: string,
  shard: number,
  cur: Cursor,
  limitBytes: number,
  from: Cursor | null,
  onEntry: ((entry: JournalEntry) => void) | null,
): Promise<ScanOutcome> {
  const handle = await open(path, 'r');
  try {
    const size = Math.min((await handle.stat()).size, limitBytes);
    const win = new Window(handle, size);
    const frameEntries: JournalEntry[] = [];
    let pos = 0;
    while (pos < size) {
      frameEntries.length = 0;
      const problem = await readFrame(win, pos, shard, cur, from, frameEntries);
      if (typeof problem === 'string') return { validEnd: pos, size, problem };
      if (onEntry !== null) for (const e of frameEntries) onEntry(e);
      pos += problem;
    }
    return { validEnd: pos, size, problem: null };
  } finally {
    await handle.close();
  }
}

/** Validates the frame at `pos`; returns its length, or a problem (cur left unchanged). */
async function readFrame(
  win: Window,
  pos: number,
  shard: number,
  cur: Cursor,
  from: Cursor | null,
  out: JournalEntry[],
): Promise<number | string> {
  const header = await win.get(pos, FRAME_HEADER_BYTES);
  if (header === null) return 'truncated frame header';
  if (header.readUInt32LE(0) !== FRAME_MAGIC) return 'bad frame magic';
  const frameBytes = header.readUInt32LE(4);
  const count = header.readUInt32LE(8);
  if (frameBytes < FRAME_HEADER_BYTES || count < 1) return 'bad frame header';
  const frame = await win.get(pos, frameBytes);
  if (frame === null) return 'truncated frame';
  let off = FRAME_HEADER_BYTES;
  let { sequence, key } = cur;
  let epoch = cur.epoch;
  for (let n = 0; n < count; n++) {
    const rec = decodeEntry(frame, off);
    if (!rec.ok) return `record ${n} at frame offset ${off}: ${rec.error}`;
    const e = rec.entry;
    if (e.shard !== shard) return `record ${n}: entry of shard ${e.shard}`;
    if (e.sequence !== sequence + 1) return `record ${n}: sequence ${e.sequence} after ${sequence}`;
    // key '' (replay's seek) means "not known yet": records before `from` are not linked.
    if (key !== '' && !rec.follows(key)) return `record ${n}: prevHash breaks the chain`;
    if (from !== null && e.sequence === from.sequence + 1 && !rec.follows(from.key)) {
      return `record ${n}: sequence ${e.sequence} does not follow the replay head's hash`;
    }
    if (from === null || e.sequence > from.sequence) out.push(e);
    sequence = e.sequence;
    key = rec.hashKey;
    epoch = e.epoch;
    off = rec.end;
  }
  if (off !== frameBytes) return `frame holds ${frameBytes - off} bytes after its records`;
  cur.sequence = sequence;
  cur.key = key;
  cur.epoch = epoch;
  return frameBytes;
}

/** A sliding read window over a file: large reads, grown only for a frame larger than it. */
class Window {
  private buf: Buffer = Buffer.alloc(0);
  private start = 0;
  private length = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
  ) {}

  /** The bytes [pos, pos+len) (a view, valid until the next get), or null past the end. */
  async get(pos: number, len: number): Promise<Buffer | null> {
    if (pos + len > this.size) return null;
    if (pos >= this.start && pos + len <= this.start + this.length) {
      return this.buf.subarray(pos - this.start, pos - this.start + len);
    }
    const want = Math.min(Math.max(len, READ_CHUNK_BYTES), this.size - pos);
    if (this.buf.length < want) this.buf = Buffer.allocUnsafe(Math.max(want, READ_CHUNK_BYTES));
    await readFully(this.handle, this.buf, want, pos);
    this.start = pos;
    this.length = want;
    return this.buf.subarray(0, len);
  }
}

/**
 * Whether any valid frame starts after `from` (exclusive): a frame magic followed by a
 * plausible header and a record whose hash verifies. Used to tell a torn tail (nothing valid
 * after the bad frame) from corruption in the middle. Reads the rest of one segment, which
 * is bounded by the segment size.
 */
async function validFrameAfter(path: string, from: number): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const size = (await handle.stat()).size;
    if (size - from <= FRAME_HEADER_BYTES) return false;
    const rest = Buffer.allocUnsafe(size - from - 1);
    await readFully(handle, rest, rest.length, from + 1);
    const magic = Buffer.alloc(4);
    magic.writeUInt32LE(FRAME_MAGIC);
    for (let at = rest.indexOf(magic); at >= 0; at = rest.indexOf(magic, at + 1)) {
      if (at + FRAME_HEADER_BYTES > rest.length) return false;
      const frameBytes = rest.readUInt32LE(at + 4);
      const frame = rest.subarray(at, at + Math.min(frameBytes, rest.length - at));
      if (decodeEntry(frame, FRAME_HEADER_BYTES).ok) return true;
    }
    return false;
  } finally {
    await handle.close();
  }
}

async function cutTornTail(path: string, validEnd: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(validEnd);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function listSegments(dir: string): Promise<Segment[]> {
  const segments: Segment[] = [];
  for (const name of await readdir(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m?.[1] === undefined) continue;
    segments.push({ firstSeq: Number(m[1]), path: join(dir, name), size: 0 });
  }
  return segments.sort((a, b) => a.firstSeq - b.firstSeq);
}

async function writeFully(handle: FileHandle, data: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('FileJournal: write made no progress');
    done += bytesWritten;
  }
}

async function readFully(handle: FileHandle, buf: Buffer, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await handle.read(buf, done, len - done, pos + done);
    if (bytesRead <= 0) throw new Error(`FileJournal: unexpected end of file at ${pos + done}`);
    done += bytesRead;
  }
}

/** mkdir -p, then fsync each parent that gained an entry, so new directories survive a crash */
async function mkdirDurable(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true });
  if (created === undefined) return;
  for (let d = dir; d !== dirname(created); d = dirname(d)) await fsyncDir(dirname(d));
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
