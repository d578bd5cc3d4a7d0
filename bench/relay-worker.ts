// Bench worker thread: one committer, like a shard worker of a pod. Commits journal groups
// through its own PgJournal for a fixed time and reports how many. Measures only.

import { parentPort, workerData } from 'node:worker_threads';
import { PgJournal } from '../persistence/pg-journal.js';
import { JournalLoad } from '../test/support/journal-load.js';

export interface CommitterTask {
  urls: string[];
  shards: number[];
  seconds: number;
  groupSize: number;
  podId: string;
  tenantsPerShard: number;
}

export interface CommitterResult {
  /** entries committed while the clock ran */
  entries: number;
  seconds: number;
  /** every entry committed, the account openings before the clock included */
  total: number;
}

async function run(task: CommitterTask): Promise<CommitterResult> {
  const journal = new PgJournal(task.urls, { podId: task.podId });
  await journal.open(task.shards, 0);
  const load = new JournalLoad(journal, task.shards, task.shards[0] ?? 1, task.tenantsPerShard);
  for (const _ of task.shards) await load.commitGroup(8); // accounts first, outside the clock
  const opened = load.entries;
  const start = performance.now();
  const end = start + task.seconds * 1000;
  while (performance.now() < end) await load.commitGroup(task.groupSize);
  const seconds = (performance.now() - start) / 1000;
  await journal.close();
  return { entries: load.entries - opened, seconds, total: load.entries };
}

run(workerData as CommitterTask).then(
  (result) => parentPort?.postMessage(result),
  (err: unknown) => {
    throw err;
  },
);
