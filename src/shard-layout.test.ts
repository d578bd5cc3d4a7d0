import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { createTestDatabases, type TestDatabases } from '../test/support/pg.js';
import { checkClusterShardLayout, checkShardLayout } from './shard-layout.js';

const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups) await c();
});

describe('shard layout guard', () => {
  test('refuses a data directory written with another shard count', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'ledger-layout-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await checkShardLayout(dir, 8);
    await checkShardLayout(dir, 8);
    await expect(checkShardLayout(dir, 16)).rejects.toThrow(/LEDGER_SHARDS=8.*16/);
  });

  test('refuses a pod joining a PostgreSQL cluster with another shard count', async () => {
    const db: TestDatabases = await createTestDatabases(1);
    cleanups.push(() => db.drop());
    const url = db.urls[0] ?? '';
    await checkClusterShardLayout(url, 64);
    await checkClusterShardLayout(url, 64);
    await expect(checkClusterShardLayout(url, 32)).rejects.toThrow(/LEDGER_SHARDS=64.*32/);
  });
});
