// Bench worker thread: either writes the journal and snapshot to recover from, or recovers one
// shard as a restarted shard worker does (journal open, then snapshot + tail or a full replay)
// in a fresh heap, and reports the time of each part and the recovered state's digest. The
// generator runs in its own thread so that its gigabytes are gone, as they would be for a
// replacement pod, before a recovery is timed. Measures only.

import { parentPort, workerData } from 'node:worker_threads';
import { FileJournal } from '../persistence/journal-file.js';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import type { SnapshotStore } from '../protocol/storage.js';
import { recoverActor } from '../shards/actor-worker.js';
import { encodeSnapshot, stateDigest } from '../shards/snapshot-codec.js';
import { createShardState } from '../shards/state-machine.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import { grow } from './shard-workload.js';

export interface RecoveryTask {
  kind: 'recover';
  dataDir: string;
  /** null: no snapshot store (full replay) */
  redis: { url: string; keyPrefix: string } | null;
}

export interface GenerateTask {
  kind: 'generate';
  dataDir: string;
  redis: { url: string; keyPrefix: string };
  accounts: number;
  entries: number;
  /** entries written after the snapshot */
  tail: number;
}

export interface RecoveryTiming {
  seconds: number;
  /** journal open, and the snapshot fetch that runs alongside it (both from the start) */
  open: number;
  load: number;
  decode: number;
  replay: number;
  digest: string;
}

const NONE: SnapshotStore = {
  save: async () => undefined, loadNewest: async () => null, close: async () => undefined,
};

/** The stores are wrapped only to note when the snapshot is loaded and the replay starts. */
async function recover(task: RecoveryTask): Promise<RecoveryTiming> {
  const snapshots = task.redis === null ? NONE : new RedisSnapshotStore(task.redis.url,
    { keyPrefix: task.redis.keyPrefix, commandTimeoutMs: 60_000 });
  const t0 = performance.now();
  const marks = { loaded: t0, replaying: t0 };
  const timed: SnapshotStore = { save: (s) => snapshots.save(s), close: () => snapshots.close(),
    loadNewest: async (shard) => {
      const got = await snapshots.loadNewest(shard);
      marks.loaded = performance.now();
      return got;
    } };
  const journal = new FileJournal(task.dataDir);
  // As ActorWorker.start does: the snapshot is fetched while the journal opens.
  const snapshot = timed.loadNewest(0);
  await journal.open([0], 1);
  const opened = performance.now();
  const replay = journal.replay.bind(journal);
  journal.replay = (shard, head, onEntry) => {
    marks.replaying = performance.now();
    return replay(shard, head, onEntry);
  };
  // and, as it does, keeps the snapshot's columns for the shard's next snapshot
  const actor = await recoverActor({ journal, snapshots: timed }, 0, snapshot, new WeakMap());
  const done = performance.now();
  await journal.close();
  await snapshots.close();
  const s = (a: number, b: number): number => (b - a) / 1000;
  return { seconds: s(t0, done), open: s(t0, opened), load: s(t0, marks.loaded),
    decode: s(Math.max(opened, marks.loaded), marks.replaying),
    replay: s(marks.replaying, done), digest: stateDigest(actor.state) };
}

/** Writes the journal, and a snapshot `tail` entries before its end; returns its size. */
async function generate(task: GenerateTask): Promise<number> {
  const store = new RedisSnapshotStore(task.redis.url,
    { keyPrefix: task.redis.keyPrefix, commandTimeoutMs: 60_000 });
  const journal = new FileJournal(task.dataDir);
  await journal.open([0], 1);
  const state = createShardState(0, 1);
  const commit = (e: JournalEntry[]) => journal.commit(e);
  await grow(state, task.accounts, task.entries - task.tail, commit);
  const bytes = encodeSnapshot(state);
  await store.save({ shard: 0, epoch: 1, head: journal.head(0), state: bytes });
  await grow(state, task.accounts, task.entries, commit);
  await journal.close();
  await store.close();
  return bytes.length;
}

const task = workerData as RecoveryTask | GenerateTask;
(task.kind === 'generate' ? generate(task) : recover(task)).then(
  (result) => parentPort?.postMessage(result),
  (err: unknown) => {
    throw err;
  },
);
