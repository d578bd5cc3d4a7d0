// A shadow replica of one shard, fed only with committed journal entries, that encodes
// snapshots off the actor thread. Pure (no I/O, no clock): the follower that feeds it and
// saves what it encodes runs in its own thread, so the actor pays nothing for a snapshot.

import type { JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead, Snapshot } from '../protocol/storage.js';
import { decodeSnapshot, encodeSnapshot } from './snapshot-codec.js';
import { applyEntry, createShardState, type ShardState } from './state-machine.js';

/*
 * Why. encodeSnapshot walks the whole shard synchronously: measured (bench/recovery.ts) about
 * 20 ms at 10k accounts, 300 ms at 100k and 8-16 s at 1M accounts + 1M transfers, against a
 * 5 ms pause budget. Chunking the walk across actor turns would need copy-on-write hooks in
 * the state machine to stay consistent. A shadow needs none: the state machine is
 * deterministic, so applying the committed entries in order rebuilds exactly the actor's
 * state at that sequence (the property recovery already relies on), and the shadow can take
 * seconds to encode without delaying one payment.
 *
 * Wiring (not done here; the actor host files are owned elsewhere): one snapshot thread per
 * pod runs a ShadowShard per hosted shard, tails the journal from the shadow's head with the
 * existing readers (persistence/journal-reader.ts, as the auditor does), calls apply() per
 * batch and, every N entries or T seconds, encode() + SnapshotStore.save(). Because it reads
 * only durable entries, a snapshot can never contain what can be lost, and its head hash is
 * the journal's own. Cost: a second copy of each shard's memory and one applyEntry per entry
 * (the auditor replays about 1M entries/s per core).
 */

export class ShadowShard {
  private state: ShardState;
  private headHash: Uint8Array;

  private constructor(state: ShardState, head: ChainHead) {
    this.state = state;
    this.headHash = head.hash;
  }

  /** From the newest snapshot (or from nothing: an empty shard at sequence 0). */
  static from(shard: number, snapshot: Snapshot | null, zeroHash: Uint8Array): ShadowShard {
    if (snapshot === null) {
      return new ShadowShard(createShardState(shard, 0), { sequence: 0, hash: zeroHash });
    }
    const state = decodeSnapshot(snapshot.state);
    if (state.sequence !== snapshot.head.sequence || state.shard !== shard) {
      throw new Error(`shadow shard ${shard}: snapshot does not match its head`);
    }
    return new ShadowShard(state, snapshot.head);
  }

  get head(): ChainHead {
    return { sequence: this.state.sequence, hash: this.headHash };
  }

  /**
   * Applies committed entries in order. `lastHash` is the stored hash of the last entry (the
   * journal reader verified the chain); it becomes the snapshot head's hash.
   */
  apply(entries: readonly JournalEntry[], lastHash: Uint8Array): void {
    if (entries.length === 0) return;
    for (const entry of entries) {
      if (entry.sequence !== this.state.sequence + 1 || entry.shard !== this.state.shard) {
        throw new Error(`shadow shard ${this.state.shard}: got sequence ${entry.sequence} ` +
          `after ${this.state.sequence}`);
      }
      applyEntry(this.state, entry);
    }
    this.headHash = lastHash;
  }

  /** The snapshot at the current head; slow on big shards, which is fine off the actor. */
  encode(epoch: number): Snapshot {
    return { shard: this.state.shard, epoch, head: this.head, state: encodeSnapshot(this.state) };
  }
}
