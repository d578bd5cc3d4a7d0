// Storage contracts every journal sink and snapshot store implements (embedded files, PostgreSQL,
// Redis). Types only: the actor host codes against these, persistence/ implements them.

import type { JournalEntry } from './journal-entry.js';

/** Where a shard's chain stands: the last durable sequence and its entry hash. */
export interface ChainHead {
  sequence: number;
  hash: Uint8Array;
}

export interface JournalSink {
  /**
   * Load the chain heads and prepare to append for these shards (creating files, tables or
   * ownership rows as needed). Called once, before any other call.
   */
  open(shards: readonly number[], epoch: number): Promise<void>;

  /**
   * The owner epoch this sink holds for a shard after open(). The embedded journal holds the
   * epoch it was opened with; PostgreSQL claims one (epoch 0 asks for current + 1) and
   * rejects every later commit once a newer owner has claimed the shard.
   */
  epochOf(shard: number): number;

  /**
   * Stream a shard's entries with sequence > afterSequence, in order, verifying sequence
   * continuity and the hash chain; a torn tail (partial last write) is cut, never applied.
   * `head` is where the caller's snapshot stands (sequence and hash), so the chain can be
   * checked from there. Resolves with the new head.
   */
  replay(
    shard: number,
    head: ChainHead,
    onEntry: (entry: JournalEntry) => void,
  ): Promise<ChainHead>;

  /**
   * Make one group durable: entries of any of the opened shards, in sequence order per
   * shard, continuing each shard's chain. Resolves only when every entry is durable
   * (fsync / COMMIT); rejects if any is not, after which the sink must be reopened.
   */
  commit(entries: readonly JournalEntry[]): Promise<void>;

  /** The durable head of a shard, as the sink knows it. */
  head(shard: number): ChainHead;

  close(): Promise<void>;
}

export interface Snapshot {
  shard: number;
  epoch: number;
  head: ChainHead;
  /** the encoded shard state (shards/snapshot-codec) */
  state: Uint8Array;
  /**
   * sha256 of `state`, when the caller already has it (the snapshot writer computes it as it
   * writes): the store checks loads against it instead of hashing the bytes again on save.
   */
  sha256?: Uint8Array;
}

export interface SnapshotStore {
  /**
   * Persist a snapshot; the previous one stays valid until this one is complete. The store
   * neither keeps nor reads `state` once the promise resolves: the caller writes the next
   * snapshot into the same memory (a store that keeps the bytes copies them).
   */
  save(snapshot: Snapshot): Promise<void>;
  /**
   * The newest complete, checksum-valid snapshot, or null (corrupt ones are skipped). Valid
   * means: the bytes equal those saved, checked against a sha256 taken at save time; recovery
   * relies on it and does not hash them a second time (decodeSnapshot 'store-verified').
   * The bytes are the caller's: it keeps parts of them (a recovered shard's snapshot columns),
   * so the store never changes or reuses them.
   */
  loadNewest(shard: number): Promise<Snapshot | null>;
  close(): Promise<void>;
}
