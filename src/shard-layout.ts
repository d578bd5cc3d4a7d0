// Guards the shard layout of a data directory: the shard count is fixed when a cluster is
// created, because tenant -> shard depends on it. A pod started with another count refuses
// to start instead of making every tenant's data look lost.

import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';

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
