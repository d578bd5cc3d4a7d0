// Bench worker thread: recovers one shard as a restarted shard worker does (journal open, then
// snapshot + tail or a full replay) in a fresh heap, and reports the time of each part and the
// recovered state's digest. Measures only.

import { parentPort, workerData } from 'node:worker_threads';
import { FileJournal } from '../persistence/journal-file.js';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import type { SnapshotStore } from '../protocol/storage.js';
import { recoverActor } from '../shards/actor-worker.js';
import { stateDigest } from '../shards/snapshot-codec.js';

export interface RecoveryTask {
  dataDir: string;
  /** null: no snapshot store (full replay) */
  redis: { url: string; keyPrefix: string } | null;
}

export interface RecoveryTiming {
  seconds: number;
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
  await journal.open([0], 1);
  const opened = performance.now();
  const replay = journal.replay.bind(journal);
  journal.replay = (shard, head, onEntry) => {
    marks.replaying = performance.now();
    return replay(shard, head, onEntry);
  };
  const actor = await recoverActor({ journal, snapshots: timed }, 0);
  const done = performance.now();
  await journal.close();
  await snapshots.close();
  const s = (a: number, b: number): number => (b - a) / 1000;
  return { seconds: s(t0, done), open: s(t0, opened), load: s(opened, marks.loaded),
    decode: s(marks.loaded, marks.replaying), replay: s(marks.replaying, done),
    digest: stateDigest(actor.state) };
}

recover(workerData as RecoveryTask).then(
  (timing) => parentPort?.postMessage(timing),
  (err: unknown) => {
    throw err;
  },
);
