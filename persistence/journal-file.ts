// Embedded journal: per-shard append-only segment files, group commit with one write per touched
// shard file and one fsync of a write-ahead log. Never acknowledges a group before it is fsynced;
// no business rules.

import { mkdir, open, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { EntryEncoder, hashKey } from '../protocol/journal-codec.js';
import { HASH_BYTES, ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead, JournalSink } from './journal.js';
import {
  FRAME_HEADER_BYTES, FRAME_MAGIC, JournalCorruptError, checkEdges, cutTornTail, fsyncDir,
  listSegments, scanSegment, segmentName, validFrameAfter, writeFully, type Cursor, type Segment,
} from './journal-segments.js';
import {
  WAL_DIR, WAL_ENTRY_HEADER, WalFile, recoverWals, walName, writeWalEntryHeader, type WalShard,
} from './journal-wal.js';

export { FRAME_MAGIC, JournalCorruptError, fsyncDir, segmentName } from './journal-segments.js';

/*
 * Layout: `${dir}/shard-NNN/journal-<first sequence, 12 digits>.seg`, and while a journal is
 * open its write-ahead log in `${dir}/wal/` (journal-wal.ts). A segment is a run of frames, one
 * per committed group and shard:
 *
 *   0  magic        u32  FRAME_MAGIC
 *   4  frameBytes   u32  the whole frame, header included
 *   8  count        u32  records in the frame (>= 1)
 *   12 records      journal-codec records, hash-chained across frames and segments
 *
 * Every record carries SHA-256(prevHash ‖ body), so the frame needs no CRC of its own: a frame
 * is valid when its header is plausible and exactly `count` valid, chained records fill it.
 *
 * Durability. A group's frames are written to their shard files without a sync, and the same
 * frames to this journal's write-ahead log (journal-wal.ts), which is synced: one fdatasync per
 * group however many shards it touched. Every second (or 16 MiB of log) a checkpoint syncs the
 * shard files written since and starts the log again; open() first puts back into the shard
 * files whatever the log holds (after a crash of the machine, unsynced shard-file pages may be
 * missing or stale), and close() syncs the shard files and deletes the log. A pod settles every
 * log in the directory before its workers open (settleFileJournal): logs of a previous worker
 * layout included.
 *
 * Failure model. A group is acknowledged only after fdatasync of the log (fdatasync
 * also persists the grown file size). If a write or fsync fails the journal fails closed: this
 * and every later commit rejects until open() runs again. After an fsync failure the kernel
 * may have dropped the dirty pages while the page cache still shows them, so the process must
 * rebuild its state from what open() + replay() read back from disk, never from memory.
 * A torn last frame (never acknowledged) is cut by open(). Limitation: an edit of the very last
 * frame of a shard is indistinguishable from a torn write here; anchors outside the file
 * (snapshots' heads, the auditor's copies) catch that.
 *
 * What is verified when. open() verifies the newest segment whole (its torn tail, the head
 * hash) and only the edges of older ones, so a long journal opens in the time of one segment.
 * replay() verifies every record it hands over; from a snapshot head it starts in the head's
 * segment, skips whole frames before the head by their headers and checks the first record
 * after it against the head's hash. Damage to records older than the snapshot is found by a
 * full replay or the auditor, not by a restart that does not need them.
 */

/**
 * A restart reads and verifies its newest segment whole (see loadShard), so the segment size
 * bounds that part of a recovery: on the 2-core bench machine, open took 0.18-0.27 s with a
 * 13 MB newest segment and 0.98-1.44 s with a 62 MB one (64 MiB segments). 16 MiB is also
 * PostgreSQL's WAL segment size.
 */
const DEFAULT_SEGMENT_BYTES = 16 * 1024 * 1024;
/** Log bytes after which the next commit checkpoints first (bounds what open() puts back). */
const DEFAULT_WAL_BYTES = 16 * 1024 * 1024;
/** Milliseconds after which the next commit checkpoints first. */
const DEFAULT_CHECKPOINT_MS = 1000;
const ZERO_KEY = hashKey(ZERO_HASH);

export interface FileJournalOptions {
  /** roll over to a new segment once a segment would pass this size (default 16 MiB) */
  segmentBytes?: number;
  /** operator-facing events: a torn tail cut at open, a write-ahead log put back */
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** checkpoint once the write-ahead log passes this many bytes (default 16 MiB) */
  walBytes?: number;
  /** checkpoint once this many milliseconds passed since the last one (default 1000) */
  checkpointMs?: number;
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
  /** written since the last checkpoint: its handle needs a sync before the next one */
  dirty: boolean;
}

export function shardDirName(shard: number): string {
  return `shard-${String(shard).padStart(3, '0')}`;
}

/**
 * Puts every write-ahead log in `dir` back into its shard files and deletes it. A pod runs this
 * before its workers open their journals, so logs of any earlier worker layout are settled.
 */
export async function settleFileJournal(dir: string): Promise<number[]> {
  return recoverWals(dir, null, (shard) => join(dir, shardDirName(shard)));
}

export class FileJournal implements JournalSink {
  private readonly segmentBytes: number;
  private readonly walBytes: number;
  private readonly checkpointMs: number;
  private readonly log: NonNullable<FileJournalOptions['log']>;
  private wal: WalFile | null = null;
  /** the log entries of one group, reused */
  private walOut: Buffer = Buffer.allocUnsafe(64 * 1024);
  private readonly shards = new Map<number, ShardFiles>();
  private readonly encoder = new EntryEncoder(1024 * 1024);
  /** reused per group: entries by shard, in first-touched order */
  private readonly groups = new Map<number, JournalEntry[]>();
  private epoch = 0;
  private state: 'new' | 'open' | 'failed' | 'closed' = 'new';
  private failure: unknown = null;
  private tail: Promise<void> = Promise.resolve();
  /** a sync of the shard files started ahead of the checkpoint (see checkpointIfDue) */
  private flushing: Promise<void> | null = null;
  /** why that sync failed: the next checkpoint fails the journal with it (never retried) */
  private flushFailure: unknown = null;

  constructor(
    private readonly dir: string,
    opts: FileJournalOptions = {},
  ) {
    const segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    if (!Number.isInteger(segmentBytes) || segmentBytes < 4096 || segmentBytes > 2 ** 31) {
      throw new RangeError(`FileJournal: segmentBytes must be an integer in [4096, 2^31]`);
    }
    this.segmentBytes = segmentBytes;
    this.walBytes = opts.walBytes ?? DEFAULT_WAL_BYTES;
    this.checkpointMs = opts.checkpointMs ?? DEFAULT_CHECKPOINT_MS;
    this.log = opts.log ?? (() => undefined);
  }

  async open(shards: readonly number[], epoch: number): Promise<void> {
    if (this.state === 'open') throw new Error('FileJournal.open: already open');
    await this.tail.catch(() => undefined);
    await this.closeHandles();
    await this.flushing;
    this.flushFailure = null; // the shard files are rebuilt from the log below
    await this.wal?.close(false); // a failed journal's log: put back below, then replaced
    this.wal = null;
    this.shards.clear();
    this.epoch = epoch;
    await mkdirDurable(join(this.dir, WAL_DIR));
    const restored = await recoverWals(this.dir, shards, (s) => join(this.dir, shardDirName(s)));
    if (restored.length > 0) this.log('journal_wal_restored', { shards: restored });
    const loaded = await Promise.all(shards.map((s) => this.loadShard(s)));
    for (const files of loaded) this.shards.set(files.shard, files);
    // The log file itself is made by the first commit's checkpoint (checkpointAt 0 is due):
    // a journal opened only to be read or closed again costs no syncs for it.
    this.wal = new WalFile(join(this.dir, WAL_DIR), walName(shards));
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
    // Every frame skipped: the replay head is the journal's head, checked in seekCursor.
    const key = cur.key === '' && cur.sequence === from.sequence ? from.key : cur.key;
    return { sequence: cur.sequence, hash: Buffer.from(key, 'latin1') };
  }

  /**
   * Waits for queued commits, then (unless the journal failed) syncs the shard files and
   * deletes the write-ahead log: a cleanly closed journal is its shard files alone.
   */
  async close(): Promise<void> {
    await this.tail.catch(() => undefined);
    await this.flushing;
    const clean = this.state === 'open' && this.flushFailure === null;
    this.state = 'closed';
    let synced = false;
    try {
      if (clean) await this.syncDirty(true);
      synced = clean;
    } finally {
      await this.closeHandles();
      const wal = this.wal;
      this.wal = null;
      await wal?.close(synced); // unsynced shard files keep their log for the next open()
    }
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
    // Entries come in runs of one shard (a batch applies shard by shard): one lookup per run.
    let shard = -1;
    let files: ShardFiles | null = null;
    let seq = 0;
    for (const e of entries) {
      if (e.shard !== shard || files === null) {
        if (files !== null) next.set(files, seq);
        shard = e.shard;
        files = this.files(shard);
        seq = next.get(files) ?? files.pendingSeq;
      }
      if (e.sequence !== seq + 1) {
        throw new Error(`FileJournal.commit: shard ${e.shard} sequence ${e.sequence} does not ` +
          `follow ${seq}`);
      }
      if (e.epoch !== this.epoch) {
        throw new Error(`FileJournal.commit: entry epoch ${e.epoch} is not ours (${this.epoch})`);
      }
      seq = e.sequence;
    }
    if (files !== null) next.set(files, seq);
    for (const [f, last] of next) f.pendingSeq = last;
  }

  private async commitNow(entries: readonly JournalEntry[]): Promise<void> {
    if (this.state !== 'open') throw this.notWritable();
    if (entries.length === 0) return;
    try {
      const frames = this.encodeGroup(entries);
      const wal = this.wal as WalFile;
      await this.checkpointIfDue(wal);
      const segs: Segment[] = [];
      for (const f of frames) segs.push(await this.place(f));
      // allSettled, not all: no write may still be running once this group has failed. The
      // log only after the shard files took the frames: a group whose write failed (rejected,
      // never acknowledged) is then in no log, and open() leaves it out.
      const results = await Promise.allSettled(
        frames.map((f, i) => this.writeFrame(f, segs[i] as Segment)));
      for (const r of results) if (r.status === 'rejected') throw r.reason;
      await wal.append(this.walEntries(frames, segs));
      frames.forEach((f, i) => {
        (segs[i] as Segment).size += f.frame.length;
        f.files.sequence = f.lastSeq;
        f.files.key = f.key;
      });
    } catch (err) {
      this.state = 'failed';
      this.failure = err;
      throw err;
    }
  }

  /** Encodes one frame per touched shard into the reused encoder. */
  private encodeGroup(entries: readonly JournalEntry[]): PendingFrame[] {
    for (const list of this.groups.values()) list.length = 0;
    let shard = -1;
    let list: JournalEntry[] = [];
    for (const e of entries) {
      if (e.shard !== shard) {
        shard = e.shard;
        const known = this.groups.get(shard);
        if (known === undefined) this.groups.set(shard, (list = []));
        else list = known;
      }
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

  /** The frame's segment (a new one when full), opened: the frame goes at its size. */
  private async place(f: PendingFrame): Promise<Segment> {
    const files = f.files;
    let seg = files.segments[files.segments.length - 1];
    if (seg === undefined || (seg.size > 0 && seg.size + f.frame.length > this.segmentBytes)) {
      seg = await this.createSegment(files, f.firstSeq);
    }
    if (files.handle === null) files.handle = await open(seg.path, 'r+');
    return seg;
  }

  /** One positional write, no sync: the write-ahead log makes the group durable. */
  private async writeFrame(f: PendingFrame, seg: Segment): Promise<void> {
    f.files.dirty = true;
    await writeFully(f.files.handle as FileHandle, f.frame, seg.size);
  }

  /** The group's frames as write-ahead log entries, each with the place it is written to. */
  private walEntries(frames: readonly PendingFrame[], segs: readonly Segment[]): Buffer {
    let bytes = 0;
    for (const f of frames) bytes += WAL_ENTRY_HEADER + f.frame.length;
    if (this.walOut.length < bytes) this.walOut = Buffer.allocUnsafe(Math.max(bytes,
      this.walOut.length * 2));
    const out = this.walOut;
    let at = 0;
    frames.forEach((f, i) => {
      const seg = segs[i] as Segment;
      writeWalEntryHeader(out, at, f.files.shard, seg.firstSeq, seg.size);
      f.frame.copy(out, at + WAL_ENTRY_HEADER);
      at += WAL_ENTRY_HEADER + f.frame.length;
    });
    return out.subarray(0, at);
  }

  /**
   * A checkpoint when the log is due (its size or age); halfway there, a sync of the shard
   * files starts in the background, so that the checkpoint itself, which waits for it and syncs
   * again, mostly finds the pages on disk already and does not hold up its group for long.
   */
  private async checkpointIfDue(wal: WalFile): Promise<void> {
    const age = Date.now() - wal.checkpointAt;
    if (wal.size >= this.walBytes || age >= this.checkpointMs) {
      await this.flushing;
      // A failed fsync is not retried: the kernel may have dropped the pages and a second
      // fsync would succeed without them.
      if (this.flushFailure !== null) throw this.flushFailure;
      await this.syncDirty(true);
      await wal.checkpoint(this.positions());
    } else if (this.flushing === null &&
      (wal.size >= this.walBytes / 2 || age >= this.checkpointMs / 2)) {
      this.flushing = this.syncDirty(false).then(
        () => { this.flushing = null; },
        (err: unknown) => {
          this.flushFailure = err;
          this.flushing = null;
        });
    }
  }

  /**
   * Syncs every shard file written since the last checkpoint. `settle`: and marks them clean
   * (only when no write can land meanwhile: inside the commit chain, or closing).
   */
  private async syncDirty(settle: boolean): Promise<void> {
    const dirty = [...this.shards.values()].filter((f) => f.dirty && f.handle !== null);
    await Promise.all(dirty.map(async (f) => {
      await (f.handle as FileHandle).datasync();
      if (settle) f.dirty = false;
    }));
  }

  /** Where every shard's files stand (no write in flight): a checkpoint's header. */
  private positions(): WalShard[] {
    return [...this.shards.values()].map((f) => {
      const seg = f.segments[f.segments.length - 1];
      return { shard: f.shard, segment: seg?.firstSeq ?? 0, size: seg?.size ?? 0,
        sequence: f.sequence, key: f.key };
    });
  }

  private async createSegment(files: ShardFiles, firstSeq: number): Promise<Segment> {
    if (files.handle !== null) {
      const old = files.handle;
      files.handle = null;
      // The next checkpoint syncs open handles only: this one's unsynced tail goes now.
      if (files.dirty) await old.datasync();
      files.dirty = false;
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

  /**
   * Finds a shard's durable head. Only the newest segment that holds a frame is read and
   * verified whole: that is where a torn tail can be, and where the head hash is. Older
   * segments are checked at their edges only (see checkEdges), so opening a long journal costs
   * one segment, not the journal; their records are verified when a replay reads them (a
   * replay from a snapshot reads only what follows it) and by the auditor.
   */
  private async loadShard(shard: number): Promise<ShardFiles> {
    const dir = join(this.dir, shardDirName(shard));
    await mkdirDurable(dir);
    const segments = await listSegments(dir);
    const first = segments[0];
    if (first !== undefined && first.firstSeq !== 1) {
      throw new JournalCorruptError(shard, first.path, 0,
        `segment starts at sequence ${first.firstSeq}, expected 1`);
    }
    let cur: Cursor = { sequence: 0, key: ZERO_KEY };
    let last = segments.length - 1;
    if (last >= 0) {
      cur = await this.loadNewest(shard, segments, last);
      const seg = segments[last] as Segment;
      if (seg.size === 0 && last > 0) {
        // The newest segment lost its only frame (torn at rollover): the head is before it.
        cur = await this.loadNewest(shard, segments, --last);
        if (cur.sequence + 1 !== seg.firstSeq) {
          throw new JournalCorruptError(shard, seg.path, 0,
            `segment starts at sequence ${seg.firstSeq}, expected ${cur.sequence + 1}`);
        }
      }
    }
    await checkEdges(shard, segments.slice(0, last + 1));
    this.checkEpoch(shard, dir, cur);
    const files: ShardFiles = {
      shard, dir, segments, handle: null, sequence: cur.sequence, key: cur.key,
      pendingSeq: cur.sequence, dirty: false,
    };
    return files;
  }

  /** Verifies segment i whole and cuts a torn tail if it is the last; the chain at its end. */
  private async loadNewest(shard: number, segments: Segment[], i: number): Promise<Cursor> {
    const seg = segments[i] as Segment;
    const cur: Cursor = { sequence: seg.firstSeq - 1, key: i === 0 ? ZERO_KEY : '' };
    const out = await scanSegment(seg.path, shard, cur, Infinity, null, null);
    seg.size = out.validEnd;
    if (out.problem === null) return cur;
    if (i < segments.length - 1 || (await validFrameAfter(seg.path, out.validEnd))) {
      throw new JournalCorruptError(shard, seg.path, out.validEnd, out.problem);
    }
    await cutTornTail(seg.path, out.validEnd);
    this.log('journal_torn_tail_cut', {
      shard, file: seg.path, offset: out.validEnd, bytes: out.size - out.validEnd,
      reason: out.problem,
    });
    return cur;
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

/** mkdir -p, then fsync each parent that gained an entry, so new directories survive a crash */
async function mkdirDurable(dir: string): Promise<void> {
  const created = await mkdir(dir, { recursive: true });
  if (created === undefined) return;
  for (let d = dir; d !== dirname(created); d = dirname(d)) await fsyncDir(dirname(d));
}
