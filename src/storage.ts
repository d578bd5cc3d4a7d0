// Chooses the journal sink and snapshot store from configuration: embedded files by default,
// PostgreSQL shard databases when configured; snapshots in Redis when LEDGER_REDIS_URL is set.
// Runs inside worker threads; main-thread-free.

import { FileJournal } from '../persistence/journal-file.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { FileSnapshotStore } from '../persistence/snapshot-file.js';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import pino from 'pino';
import type { Storage } from '../shards/actor-worker.js';

/** redisUrl: snapshots go to Redis instead of files under dataDir (either journal kind) */
export type StorageConfig = (
  | { kind: 'file'; dataDir: string }
  /** urls: shard → database is shard % urls.length, fixed forever (see pg-journal.ts) */
  | { kind: 'pg'; urls: string[]; podId: string; dataDir: string }
) & { redisUrl?: string };

/** PostgreSQL when LEDGER_PG_URLS lists databases, else the embedded journal. */
export function storageFor(c: {
  pgUrls: string[]; podId: string; dataDir: string; redisUrl?: string | null;
}): StorageConfig {
  const journal: StorageConfig = c.pgUrls.length > 0
    ? { kind: 'pg', urls: c.pgUrls, podId: c.podId, dataDir: c.dataDir }
    : { kind: 'file', dataDir: c.dataDir };
  return c.redisUrl ? { ...journal, redisUrl: c.redisUrl } : journal;
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
  if (config.redisUrl === undefined) {
    return { journal, snapshots: new FileSnapshotStore(config.dataDir) };
  }
  const log = pino({ name: 'snapshots' });
  const snapshots = new RedisSnapshotStore(config.redisUrl, {
    log: (event, fields) => log.warn({ event, ...fields }, event),
  });
  return { journal, snapshots };
}
