// Takes shard snapshots without stalling the actor: encodes in short slices between batches
// (SnapshotWriter sees the state as at its sequence while batches go on), stores a snapshot
// only once the journal holds its sequence, and records how long each slice held the thread.

import type { ChainHead, SnapshotStore } from '../protocol/storage.js';
import type { ShardState, TenantBook } from './ledger-book.js';
import { ByteArena } from './snapshot-bytes.js';
import { SnapshotWriter, type BookColumns } from './snapshot-writer.js';

/*
 * Why slices on the actor thread, not another thread. The state lives in this thread's heap;
 * handing it to another thread means copying it (a pause as long as the copy) or keeping a
 * second replica fed with every entry (twice the memory and an apply per entry on a 2-core
 * box). The writer needs no copy: it reads the live state as it was at the snapshot's
 * sequence (see snapshot-writer.ts), so the actor only lends it a few milliseconds per turn.
 * Cost: the encoding's CPU time, spread over the turns it takes; nothing on the apply path.
 * The books' unchanging columns are kept between snapshots (about the size of a snapshot in
 * memory), so after the first one a snapshot encodes only what is new, plus balances and
 * statuses, and copies and hashes the rest: about a sixth of the first one's time. A shard
 * recovered from a snapshot takes them from its bytes, so even its first snapshot is such.
 */

export interface SnapshotterOptions {
  store: SnapshotStore;
  /** the journal's durable head of a shard */
  head: (shard: number) => ChainHead;
  /** longest a slice of encoding may hold the thread, in ms */
  sliceMs: number;
  /** told when each slice starts and how long it held the thread (metrics, benchmarks) */
  onSliceStart?: () => void;
  onSlice?: (ms: number) => void;
}

/** Longest a slice of snapshot encoding holds the actor's thread, in ms (the worker's). */
export const SNAPSHOT_SLICE_MS = 2;

/** Slice durations kept for pauseStats(): the newest ones, a fixed number. */
const PAUSES_KEPT = 8192;
/**
 * Share of the thread's time snapshots may take: after a snapshot whose slices took D ms in
 * all, the next one waits (1 / share - 1) * (D - SNAPSHOT_FREE_MS). A snapshot costs time in
 * proportion to the whole shard, so "every N entries" alone would let a large, busy shard
 * spend most of its thread encoding snapshots; small shards' snapshots cost next to nothing
 * and are not held back.
 */
const SNAPSHOT_SHARE = 0.1;
const SNAPSHOT_FREE_MS = 20;
/** Output made this much bigger than the shard's last snapshot, so it is rarely grown. */
const OUTPUT_HEADROOM = 1.05;

export interface PauseStats {
  slices: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export class Snapshotter {
  private running: Promise<void> | null = null;
  /** the writers' part memory, kept from one snapshot to the next */
  private readonly arena = new ByteArena();
  /** bytes of each shard's last snapshot: the next one's output is made that big at once */
  private readonly sizes = new Map<number, number>();
  /**
   * The output memory of the last snapshot a store took, for the next one. A snapshot of a
   * large shard is tens of MiB outside the JS heap, and new memory of that size each time
   * pushes V8 to collect the whole heap ("external memory pressure") more often.
   */
  private spare: Buffer | undefined;
  /**
   * Each book's unchanging columns, kept for the next snapshot (gone with the book). A
   * recovery fills them from the snapshot it decodes (decodeSnapshot's `columns`): the first
   * snapshot after it then encodes only what is new, like any later one.
   */
  readonly columns = new WeakMap<TenantBook, BookColumns>();
  /** performance.now() before which no new snapshot starts (see SNAPSHOT_SHARE) */
  private restAt = 0;
  private readonly pauses = new Float64Array(PAUSES_KEPT);
  private pauseCount = 0;
  /** outcome of the newest snapshot, for tests and status: 'saved' or why not */
  lastOutcome = 'none';

  constructor(private readonly opts: SnapshotterOptions) {
    if (!(opts.sliceMs > 0 && opts.sliceMs <= 1000)) {
      throw new RangeError(`Snapshotter: sliceMs must be in (0, 1000], got ${opts.sliceMs}`);
    }
  }

  get busy(): boolean {
    return this.running !== null;
  }

  /** Whether a new snapshot may start now: none running, and the last one's rest is over. */
  get ready(): boolean {
    return this.running === null && performance.now() >= this.restAt;
  }

  /**
   * Snapshots `state` as it is now (its sequence S) and saves it once `durable` (the commit of
   * the group ending at S) resolves and the bytes are ready; the state may change meanwhile.
   * One snapshot at a time. The promise never rejects: a failed snapshot means a longer
   * replay, never wrong data.
   */
  start(state: ShardState, durable: Promise<void>): Promise<void> {
    if (this.running !== null) throw new Error('Snapshotter: a snapshot is already running');
    const writer = new SnapshotWriter(state, { arena: this.arena, columns: this.columns,
      sizeHint: Math.ceil((this.sizes.get(state.shard) ?? 0) * OUTPUT_HEADROOM),
      output: this.spare });
    this.spare = undefined; // this writer's now; back only if the store takes the snapshot
    // The head is read the moment the group is durable: later groups move it past S.
    const sealed = durable.then(() => {
      const head = this.opts.head(writer.shard);
      if (head.sequence !== writer.sequence) {
        throw new Error(`journal head ${head.sequence} is not the snapshot's ${writer.sequence}`);
      }
      return { sequence: head.sequence, hash: Uint8Array.from(head.hash) };
    });
    sealed.catch(() => undefined); // reported below, once the encoding is done
    const run = this.encode(writer)
      .then(async (bytes) => {
        this.sizes.set(writer.shard, bytes.length);
        const head = await sealed;
        await this.opts.store.save({ shard: writer.shard, epoch: writer.epoch, head,
          state: bytes, sha256: writer.digest() });
        // Stores read the bytes no more once save resolves; after a failed save they might.
        this.spare = writer.memory();
        this.lastOutcome = 'saved';
      })
      .catch((err: unknown) => {
        this.lastOutcome = err instanceof Error ? err.message : String(err);
      })
      .finally(() => {
        this.running = null;
      });
    this.running = run;
    return run;
  }

  /** Resolves once no snapshot is running. */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve();
  }

  /** Percentiles of the newest slice durations (the pauses snapshots caused). */
  pauseStats(): PauseStats {
    const n = Math.min(this.pauseCount, PAUSES_KEPT);
    const sorted = this.pauses.slice(0, n).sort();
    const at = (p: number): number => sorted[Math.min(n - 1, Math.floor((p / 100) * n))] ?? 0;
    return { slices: this.pauseCount, p50Ms: at(50), p99Ms: at(99), maxMs: sorted[n - 1] ?? 0 };
  }

  /** Runs the writer one slice per event-loop turn, so batches and commits run in between. */
  private encode(writer: SnapshotWriter): Promise<Uint8Array> {
    let workedMs = 0;
    return new Promise<Uint8Array>((resolve, reject) => {
      const slice = (): void => {
        this.opts.onSliceStart?.();
        const started = performance.now();
        const deadline = started + this.opts.sliceMs;
        let done = false;
        try {
          done = writer.step(() => performance.now() >= deadline);
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        } finally {
          const ms = performance.now() - started;
          this.pauses[this.pauseCount++ % PAUSES_KEPT] = ms;
          workedMs += ms;
          this.opts.onSlice?.(ms);
        }
        if (done) resolve(writer.result());
        else setImmediate(slice);
      };
      setImmediate(slice);
    }).finally(() => {
      const paced = Math.max(0, workedMs - SNAPSHOT_FREE_MS);
      this.restAt = performance.now() + (1 / SNAPSHOT_SHARE - 1) * paced;
    });
  }
}
