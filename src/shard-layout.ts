// Guards the shard layout of a data directory: the shard count is fixed when a cluster is
// created, because tenant -> shard depends on it. A pod started with another count refuses
// to start instead of making every tenant's data look lost.

import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';

const FILE = 'layout.json';

export async function checkShardLayout(dataDir: string, shardCount: number): Promise<void> {
  const file = path.join(dataDir, FILE);
  let text: string | null = null;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== null) {
    const stored = (JSON.parse(text) as { shardCount?: unknown }).shardCount;
    if (stored !== shardCount) {
      throw new Error(
        `${file} says this data was written with LEDGER_SHARDS=${String(stored)}, but the pod ` +
          `was started with ${shardCount}; the shard count of a cluster never changes`,
      );
    }
    return;
  }
  await mkdir(dataDir, { recursive: true });
  const tmp = `${file}.tmp`;
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(JSON.stringify({ shardCount, version: 1 }) + '\n');
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, file);
}

/**
 * The same guard for a cluster: the shard count is recorded in database 0 of LEDGER_PG_URLS,
 * so a pod that joins with another count (a new, empty volume has no layout.json) is refused.
 */
export async function checkClusterShardLayout(pgUrl: string, shardCount: number): Promise<void> {
  const client = new pg.Client({ connectionString: pgUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(
      'CREATE TABLE IF NOT EXISTS ledger_layout (id int PRIMARY KEY CHECK (id = 1), ' +
        'shard_count int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())',
    );
    await client.query(
      'INSERT INTO ledger_layout (id, shard_count) VALUES (1, $1) ON CONFLICT (id) DO NOTHING',
      [shardCount],
    );
    const row = await client.query<{ shard_count: number }>(
      'SELECT shard_count FROM ledger_layout WHERE id = 1',
    );
    const stored = row.rows[0]?.shard_count;
    if (stored !== shardCount) {
      throw new Error(
        `the cluster in LEDGER_PG_URLS was created with LEDGER_SHARDS=${String(stored)}, but ` +
          `this pod was started with ${shardCount}; the shard count of a cluster never changes`,
      );
    }
  } finally {
    await client.end();
  }
}
