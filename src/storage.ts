// Chooses the journal sink and snapshot store from configuration: embedded files by default,
// PostgreSQL shard databases when configured. Runs inside worker threads; main-thread-free.

import { FileJournal } from '../persistence/journal-file.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { FileSnapshotStore } from '../persistence/snapshot-file.js';
import type { Storage } from '../shards/actor-worker.js';

export type StorageConfig =
  | { kind: 'file'; dataDir: string }
  /** urls: shard → database is shard % urls.length, fixed forever (see pg-journal.ts) */
  | { kind: 'pg'; urls: string[]; podId: string; dataDir: string };

/** PostgreSQL when LEDGER_PG_URLS lists databases, else the embedded journal. */
export function storageFor(c: { pgUrls: string[]; podId: string; dataDir: string }): StorageConfig {
  return c.pgUrls.length > 0
    ? { kind: 'pg', urls: c.pgUrls, podId: c.podId, dataDir: c.dataDir }
    : { kind: 'file', dataDir: c.dataDir };
}

/**
 * The epoch workers open their journal with. PostgreSQL: 0, "claim current + 1", so every
 * (re)started worker fences its predecessor; a fixed epoch would be refused as stale on the
 * second start. Files: one writer, a constant epoch.
 */
export function openEpochFor(config: StorageConfig): number {
  return config.kind === 'pg' ? 0 : 1;
}

export function openStorage(config: StorageConfig): Storage {
  const journal =
    config.kind === 'pg'
      ? new PgJournal(config.urls, { podId: config.podId })
      : new FileJournal(config.dataDir);
  // Snapshots stay files under dataDir in both modes until the Redis store lands.
  return { journal, snapshots: new FileSnapshotStore(config.dataDir) };
}
