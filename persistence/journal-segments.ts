// Reading side of the embedded journal's segment files: frame-by-frame verification of the
// hash chain, seeking past frames a replay does not need, torn-tail detection and cheap checks
// of segment edges. Reads and truncates files; never appends, never decides business rules.

import { open, readdir, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeEntry } from '../protocol/journal-codec.js';
import { HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';

export const FRAME_MAGIC = 0x4c4a4731; // 'LJG1' read as little-endian bytes "1GJL"
export const FRAME_HEADER_BYTES = 12;
/** A record's prevHash and fixed body fields up to its sequence (journal-codec layout). */
const FIRST_RECORD_BYTES = HASH_BYTES + 14;
const READ_CHUNK_BYTES = 8 * 1024 * 1024;
const SEGMENT_RE = /^journal-(\d{12})\.seg$/;
const SEQ_DIGITS = 12;

export function segmentName(firstSeq: number): string {
  return `journal-${String(firstSeq).padStart(SEQ_DIGITS, '0')}.seg`;
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

export interface Segment {
  firstSeq: number;
  path: string;
  /** valid bytes (everything is valid after open() cut a torn tail) */
  size: number;
}

/** A chain position while scanning: advanced only frame by frame. */
export interface Cursor {
  sequence: number;
  key: string;
  /** epoch of the last entry passed, if any */
  epoch?: number;
}

export interface ScanOutcome {
  validEnd: number;
  size: number;
  problem: string | null;
}

/**
 * Reads one segment with large sequential reads and walks its frames, advancing `cur` one
 * whole valid frame at a time. With `from`, checks the link to it and hands entries past it
 * to onEntry. Stops at the first problem; `validEnd` is where the valid frames end.
 */
export async function scanSegment(
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
      const skipped = from === null ? 0 : await skipFrame(win, pos, shard, cur, from);
      if (skipped > 0) {
        pos += skipped;
        continue;
      }
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

/**
 * Skips the frame at `pos` unread when all its records are at or before the replay head: a
 * replay from a snapshot seeks through the rest of the head's segment by frame headers. The
 * frame must still continue the sequence; the chain link to the head is checked on the first
 * record after it. Returns the bytes skipped, 0 to read the frame (readFrame names problems).
 */
async function skipFrame(win: Window, pos: number, shard: number, cur: Cursor,
  from: Cursor): Promise<number> {
  const head = await win.peek(pos, FRAME_HEADER_BYTES + FIRST_RECORD_BYTES);
  if (head === null || head.readUInt32LE(0) !== FRAME_MAGIC) return 0;
  const frameBytes = head.readUInt32LE(4);
  const count = head.readUInt32LE(8);
  const body = FRAME_HEADER_BYTES + HASH_BYTES;
  const sequence = head.readUInt32LE(body + 10) * 2 ** 32 + head.readUInt32LE(body + 6);
  if (frameBytes < FRAME_HEADER_BYTES + FIRST_RECORD_BYTES || count < 1 ||
    head.readUInt32LE(body + 2) !== shard || sequence !== cur.sequence + 1 ||
    sequence + count - 1 > from.sequence || !win.has(pos, frameBytes)) {
    return 0;
  }
  cur.sequence = sequence + count - 1;
  cur.key = ''; // not read: the next frame's records are checked by their own hashes
  cur.epoch = undefined;
  return frameBytes;
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
  if (frameBytes < FRAME_HEADER_BYTES) return 'bad frame header';
  const frame = await win.get(pos, frameBytes);
  if (frame === null) return 'truncated frame';
  return checkFrame(frame, shard, cur, from, out); // the rest of the header is checked there
}

/**
 * Validates one whole frame held in `frame` (its header at 0, exactly its bytes): every record
 * decodes, belongs to `shard`, continues the sequence and the chain after `cur`. Returns its
 * length and advances `cur`, or a problem (cur left unchanged). Entries after `from` (all
 * when null) are appended to `out`.
 */
export function checkFrame(
  frame: Buffer,
  shard: number,
  cur: Cursor,
  from: Cursor | null,
  out: JournalEntry[],
): number | string {
  if (frame.length < FRAME_HEADER_BYTES) return 'truncated frame header';
  if (frame.readUInt32LE(0) !== FRAME_MAGIC) return 'bad frame magic';
  const frameBytes = frame.readUInt32LE(4);
  const count = frame.readUInt32LE(8);
  if (frameBytes !== frame.length || count < 1) return 'bad frame header';
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
  private small: Buffer = Buffer.alloc(0);
  private start = 0;
  private length = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly size: number,
  ) {}

  /** Whether the file holds the bytes [pos, pos+len). */
  has(pos: number, len: number): boolean {
    return pos + len <= this.size;
  }

  /**
   * Like get, but a few bytes outside the window are read on their own, leaving the window
   * where it is: seeking by frame headers reads headers, not 8 MiB at each of them.
   */
  async peek(pos: number, len: number): Promise<Buffer | null> {
    if (pos + len > this.size) return null;
    if (pos >= this.start && pos + len <= this.start + this.length) {
      return this.buf.subarray(pos - this.start, pos - this.start + len);
    }
    if (this.small.length < len) this.small = Buffer.allocUnsafe(len);
    await readFully(this.handle, this.small, len, pos);
    return this.small.subarray(0, len);
  }

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
export async function validFrameAfter(path: string, from: number): Promise<boolean> {
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

/** Segments whose edges are read at once while opening (bounds open file handles). */
const EDGE_READS = 32;

/**
 * Cheap checks of the segments before the newest, so that a lost, truncated, renamed or
 * foreign segment is found at open without reading the journal: each one's first record names
 * the shard and the sequence its file name says, and carries as prevHash the previous
 * segment's last 32 bytes (the hash that ends its last record). Sets those segments' sizes.
 */
export async function checkEdges(shard: number, segments: Segment[]): Promise<void> {
  const edges: Array<{ head: Buffer; tail: Buffer }> = [];
  for (let i = 0; i < segments.length; i += EDGE_READS) {
    const batch = segments.slice(i, i + EDGE_READS);
    edges.push(...await Promise.all(batch.map((seg, k) =>
      readEdges(seg, i + k < segments.length - 1))));
  }
  const body = FRAME_HEADER_BYTES + HASH_BYTES;
  for (let i = 1; i < segments.length; i++) {
    const seg = segments[i] as Segment;
    const { head } = edges[i] as { head: Buffer };
    const { tail } = edges[i - 1] as { tail: Buffer };
    const ok = head.length === FRAME_HEADER_BYTES + FIRST_RECORD_BYTES &&
      head.readUInt32LE(0) === FRAME_MAGIC && head.readUInt32LE(body + 2) === shard &&
      head.readUInt32LE(body + 10) * 2 ** 32 + head.readUInt32LE(body + 6) === seg.firstSeq &&
      tail.length === HASH_BYTES && head.subarray(FRAME_HEADER_BYTES, body).equals(tail);
    if (!ok) {
      const previous = (segments[i - 1] as Segment).path;
      throw new JournalCorruptError(shard, seg.path, 0, `segment starts at sequence ` +
        `${seg.firstSeq} but its first record does not continue ${previous}`);
    }
  }
}

/** The first frame header and record prefix, and the last 32 bytes, of one segment. */
async function readEdges(seg: Segment, older: boolean): Promise<{ head: Buffer; tail: Buffer }> {
  const handle = await open(seg.path, 'r');
  try {
    const size = older ? (await handle.stat()).size : seg.size;
    if (older) seg.size = size;
    const head = Buffer.alloc(Math.min(size, FRAME_HEADER_BYTES + FIRST_RECORD_BYTES));
    const tail = Buffer.alloc(Math.min(size, HASH_BYTES));
    await readFully(handle, head, head.length, 0);
    await readFully(handle, tail, tail.length, size - tail.length);
    return { head, tail };
  } finally {
    await handle.close();
  }
}

export async function cutTornTail(path: string, validEnd: number): Promise<void> {
  const handle = await open(path, 'r+');
  try {
    await handle.truncate(validEnd);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** The names in `dir`; none when it does not exist (never written, or removed). */
export async function readdirIfAny(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

/** A shard directory's segments by first sequence; none when the directory does not exist. */
export async function listSegments(dir: string): Promise<Segment[]> {
  const segments: Segment[] = [];
  for (const name of await readdirIfAny(dir)) {
    const m = SEGMENT_RE.exec(name);
    if (m?.[1] === undefined) continue;
    segments.push({ firstSeq: Number(m[1]), path: join(dir, name), size: 0 });
  }
  return segments.sort((a, b) => a.firstSeq - b.firstSeq);
}

async function readFully(handle: FileHandle, buf: Buffer, len: number, pos: number): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await handle.read(buf, done, len - done, pos + done);
    if (bytesRead <= 0) throw new Error(`FileJournal: unexpected end of file at ${pos + done}`);
    done += bytesRead;
  }
}

export async function writeFully(handle: FileHandle, data: Buffer, position: number):
  Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, position + done);
    if (bytesWritten <= 0) throw new Error('FileJournal: write made no progress');
    done += bytesWritten;
  }
}

export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
