// Audits whole shards, one task per shard: read raw records, feed the ShardAudit, return its
// report. Runs in the main thread or as a piscina worker; never writes to any journal.

import {
  databaseOfShard,
  scanFileShard,
  scanPgShard,
  type RecordBatch,
} from '../../persistence/journal-reader.js';
import { FileSnapshotStore } from '../../persistence/snapshot-file.js';
import type { Snapshot } from '../../protocol/storage.js';
import type { ShardReport } from './findings.js';
import { ShardAudit } from './shard-audit.js';
import type { StatementRequest } from './statement.js';

export type JournalSource = { kind: 'file'; dataDir: string } | { kind: 'pg'; urls: string[] };

/** One shard's audit, as plain data so it can cross into a worker thread. */
export interface ShardTask {
  source: JournalSource;
  shard: number;
  asOfSequence: number | null;
  asOfTime: number | null;
  tenants: string[] | null;
  balancesAtEnd: boolean;
  statement: StatementRequest | null;
  /** directory of file snapshots to compare with (null: no snapshot comparison) */
  snapshotDir: string | null;
  /** progress counters shared with the main thread: [entries, units] per slot, or null */
  progress: SharedArrayBuffer | null;
  slot: number;
}

function readerOf(
  task: ShardTask,
  onUnits: (units: number) => void,
): AsyncGenerator<RecordBatch> {
  const source = task.source;
  if (source.kind === 'file') return scanFileShard(source.dataDir, task.shard, onUnits);
  const url = source.urls[databaseOfShard(task.shard, source.urls.length)];
  if (url === undefined) throw new RangeError('audit: no database URL');
  return scanPgShard(url, task.shard, onUnits);
}

async function loadSnapshot(task: ShardTask): Promise<Snapshot | null> {
  if (task.snapshotDir === null) return null;
  return new FileSnapshotStore(task.snapshotDir).loadNewest(task.shard);
}

export async function auditShard(task: ShardTask): Promise<ShardReport> {
  const audit = new ShardAudit({
    shard: task.shard,
    asOfSequence: task.asOfSequence,
    asOfTime: task.asOfTime,
    tenants: task.tenants === null ? null : new Set(task.tenants),
    balancesAtEnd: task.balancesAtEnd,
    statement: task.statement,
    snapshot: await loadSnapshot(task),
  });
  const counters = task.progress === null ? null : new Float64Array(task.progress);
  const at = task.slot * 2;
  const onUnits = (units: number): void => {
    if (counters === null) return;
    counters[at] = audit.entries;
    counters[at + 1] = units;
  };
  const reader = readerOf(task, onUnits);
  try {
    for await (const batch of reader) {
      const more = audit.addBatch(batch);
      if (batch.problem !== null) audit.problem(batch.problem);
      if (!more) break;
    }
  } finally {
    await reader.return(undefined);
  }
  if (counters !== null) counters[at] = audit.entries;
  return audit.finish();
}

/** piscina entry point */
export default auditShard;
