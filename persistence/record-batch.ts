// The batches of stored records that the journal readers hand the auditor: column-wise and
// reused (no object per record), plus the per-record form for tools and tests. Judges nothing.

import { blankEntry, hashKey, type EntryEncoder } from '../protocol/journal-codec.js';
import { HASH_BYTES, type JournalEntry } from '../protocol/journal-entry.js';

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

/** Progress callback: storage units read so far (bytes for files, rows for PostgreSQL). */
export type OnUnits = (units: number) => void;

/**
 * Records in storage order, as a reader yields them. The reader reuses the batch, its entry
 * objects and its buffer: all of it is valid only until the reader is resumed, so a consumer
 * that keeps an entry copies it. Record i (i < count):
 * - entries[i]: the stored entry;
 * - its stored prevHash at buf[prevAt[i]] and stored hash at buf[hashAt[i]], 32 bytes each;
 * - keys[i]: SHA-256 (latin1 form, see hashKey) of the stored bytes prevHash ‖ body (files), or
 *   of the stored fields encoded as that record (PostgreSQL); a text saying why when the fields
 *   cannot be encoded (never 32 characters long, so it never matches a hash).
 */
export class RecordBatch {
  count = 0;
  buf: Buffer = Buffer.alloc(0);
  readonly entries: JournalEntry[] = [];
  readonly keys: string[] = [];
  prevAt: Int32Array = new Int32Array(256);
  hashAt: Int32Array = new Int32Array(256);
  /** set on the last batch when reading stopped at bytes that are not records */
  problem: ReadProblem | null = null;
  /** every key is a 32-byte hash (none is a text saying why there is none) */
  allHashes = true;
  private stored: Buffer = Buffer.alloc(0);

  /** Start refilling: forget the records, keep the memory. */
  reset(buf: Buffer): void {
    this.count = 0;
    this.buf = buf;
    this.problem = null;
    this.allHashes = true;
    this.keys.length = 0;
  }

  /** The pooled entry for the next record, to be filled then committed with add(). */
  slot(): JournalEntry {
    const i = this.count;
    if (i === this.prevAt.length) {
      this.prevAt = grown(this.prevAt);
      this.hashAt = grown(this.hashAt);
    }
    const e = this.entries[i];
    if (e !== undefined) return e;
    const made = blankEntry();
    this.entries.push(made);
    return made;
  }

  /** Adds the record whose entry the last slot() gave (or `entry` in its place). */
  add(key: string, prevAt: number, hashAt: number, entry?: JournalEntry): void {
    const i = this.count++;
    if (entry !== undefined) this.entries[i] = entry;
    this.keys.push(key);
    if (key.length !== HASH_BYTES) this.allHashes = false;
    this.prevAt[i] = prevAt;
    this.hashAt[i] = hashAt;
  }

  /**
   * Whether records [from, to) all have their stored hash equal to their key, decided with one
   * string comparison: the stored hashes are copied back to back (four bytes at a time) and read
   * as one latin1 string, the keys joined. ~40 ns a record where comparing each key with its
   * stored bytes costs ~100 ns (String.prototype.charCodeAt per byte). False tells nothing
   * about which record differs: the caller then compares record by record.
   */
  hashesMatch(from: number, to: number): boolean {
    if (!this.allHashes) return false;
    const n = (to - from) * HASH_BYTES;
    if (this.stored.length < n) this.stored = Buffer.allocUnsafe(2 * n);
    const buf = this.buf;
    const src = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const dst = new DataView(this.stored.buffer, this.stored.byteOffset, n);
    for (let i = from; i < to; i++) {
      const at = this.hashAt[i] ?? 0;
      const out = (i - from) * HASH_BYTES;
      for (let k = 0; k < HASH_BYTES; k += 4) dst.setInt32(out + k, src.getInt32(at + k));
    }
    return this.keys.slice(from, to).join('') === this.stored.toString('latin1', 0, n);
  }

  /** Forgets the records after the first `count` (a frame that did not parse). */
  truncate(count: number): void {
    this.count = count;
    this.keys.length = count;
  }

  /** Sequence of the last record, or `fallback` when empty. */
  lastSequence(fallback: number): number {
    return this.count === 0 ? fallback : (this.entries[this.count - 1]?.sequence ?? fallback);
  }
}

function grown(a: Int32Array): Int32Array {
  const next = new Int32Array(a.length * 2);
  next.set(a);
  return next;
}

/** One stored record on its own (tools and tests). Hashes are 32-byte latin1 strings. */
export interface RawRecord {
  entry: JournalEntry;
  /** the stored hash of the predecessor */
  prevKey: string;
  /** the stored hash of this record */
  hashKey: string;
  /** the batch's key (see RecordBatch.keys); null when not computed (the auditor computes it) */
  bytesKey: string | null;
}

/** A batch on its own: records that outlive the reader (entries copied). */
export interface ReadBatch {
  records: RawRecord[];
  problem: ReadProblem | null;
}

export function detachBatch(batch: RecordBatch): ReadBatch {
  const records: RawRecord[] = [];
  const buf = batch.buf;
  for (let i = 0; i < batch.count; i++) {
    const entry = batch.entries[i];
    const at = batch.prevAt[i] ?? 0;
    const hashAt = batch.hashAt[i] ?? 0;
    if (entry === undefined) break;
    records.push({ entry: { ...entry }, prevKey: hashKey(buf.subarray(at, at + HASH_BYTES)),
      hashKey: hashKey(buf.subarray(hashAt, hashAt + HASH_BYTES)),
      bytesKey: batch.keys[i] ?? null });
  }
  return { records, problem: batch.problem };
}

/**
 * The batch form of records (the auditor's one code path): the stored hashes laid out in a new
 * buffer; keys from bytesKey, or from `rehash` when null. Throws RangeError on a stored hash
 * that is not 32 bytes (a reader never yields one).
 */
export function batchOf(records: readonly RawRecord[], rehash: (r: RawRecord) => string):
  RecordBatch {
  const batch = new RecordBatch();
  const buf = Buffer.alloc(records.length * 2 * HASH_BYTES);
  batch.reset(buf);
  records.forEach((r, i) => {
    if (r.prevKey.length !== HASH_BYTES || r.hashKey.length !== HASH_BYTES) {
      throw new RangeError(`record ${r.entry.sequence}: a stored hash is not 32 bytes`);
    }
    const at = i * 2 * HASH_BYTES;
    buf.write(r.prevKey, at, 'latin1');
    buf.write(r.hashKey, at + HASH_BYTES, 'latin1');
    batch.slot();
    batch.add(r.bytesKey ?? rehash(r), at, at + HASH_BYTES, r.entry);
  });
  return batch;
}

/**
 * The key of `entry` after the stored hash `prevKey`: its fields encoded as a journal-codec
 * record and hashed, or why they cannot be encoded (the text never matches a stored hash).
 */
export function encodedKey(encoder: EntryEncoder, entry: JournalEntry, prevKey: string): string {
  try {
    encoder.reset();
    return encoder.appendOne(entry, prevKey);
  } catch (err) {
    return `(not encodable: ${err instanceof Error ? err.message : String(err)})`;
  }
}
