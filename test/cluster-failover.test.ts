// Failover across pod processes (Guarantees 1, 2, 3, 5): two pods share PostgreSQL, clients pay
// through both, pod A is killed with SIGKILL; pod B claims A's shards when A's lease expires
// and recovers them from snapshot + journal. Every payment A acknowledged is there once.

import { Redis } from 'ioredis';
import { afterAll, describe, expect, test } from 'vitest';
import { runLoad, setupTenants, verifyLedger } from './support/cluster-load.js';
import { createTestDatabases, type TestDatabases } from './support/pg.js';
import {
  admin,
  clusterFixture,
  removeFixture,
  startPodProcess,
  tokenPropagation,
  waitReady,
  type ClusterFixture,
  type PodProcess,
} from './support/pod.js';

const TENANTS = Array.from({ length: 8 }, (_, i) => `fo-${i}`);
const pods: PodProcess[] = [];
let dbs: TestDatabases | null = null;
let fx: ClusterFixture | null = null;
let failed = true;

async function cleanUp(): Promise<void> {
  for (const p of pods.splice(0)) await p.kill9();
  if (fx) removeFixture(fx, failed);
  if (fx && failed) process.stdout.write(`cluster logs kept in ${fx.root}\n`);
  await dbs?.drop();
  fx = null;
  dbs = null;
}

afterAll(cleanUp);

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function owners(pod: PodProcess): Promise<Map<number, string>> {
  const r = await admin(pod, 'GET', '/shards');
  const rows = r.body.shards as Array<{ shard: number; owner: string | null; state: string }>;
  return new Map(rows.map((s) => [s.shard, `${s.owner}:${s.state}`]));
}

/*
 * With Redis, rebalancing saves a snapshot of each shard it hands over, so B's takeover of
 * those shards is snapshot + journal tail (a Redis logical database of its own, flushed first,
 * keeps other tests' snapshots out; a foreign one would only mean a longer replay).
 */
const VARIANTS: Array<{ name: string; env: Record<string, string> }> = [
  { name: 'journal only', env: {} },
  { name: 'Redis snapshots', env: { LEDGER_REDIS_URL: 'redis://127.0.0.1:6379/11' } },
];

describe.each(VARIANTS)('failover between two pod processes ($name)', ({ env }) => {
  test('kill -9 of pod A: B takes over, every acknowledged payment present once', async () => {
    failed = true;
    const redisUrl = env.LEDGER_REDIS_URL;
    if (redisUrl !== undefined) {
      const redis = new Redis(redisUrl);
      await redis.flushdb();
      redis.disconnect();
    }
    dbs = await createTestDatabases(2);
    fx = await clusterFixture({ pgUrls: dbs.urls, tenants: TENANTS, shardCount: 8, env });
    const a = await startPodProcess(fx, 'pod-a');
    pods.push(a);
    await waitReady(a);
    const b = await startPodProcess(fx, 'pod-b');
    pods.push(b);
    await waitReady(b);
    // Tenants come from the first pod's admin API (support/pod.ts); the load below uses them on
    // every pod. One more, created on pod-b, must be accepted by pod-a without a restart.
    const spread = await tokenPropagation(b, a, 'fo-late');
    process.stdout.write(`tenant token b→a: accepted after ${spread.ms.toFixed(1)} ms ` +
      `(${spread.unauthorized} x 401 before)\n`);
    const plan = await admin(b, 'POST', '/shards/rebalance', { wait: true });
    expect(plan.status).toBe(200);
    const before = await owners(b);
    expect([...before.values()].filter((o) => o.startsWith('pod-a')).length).toBe(4);

    let live = [a.url, b.url];
    await setupTenants(() => live, fx.tokens);
    let running = true;
    const load = runLoad({ clients: 6, urls: () => live, tokens: fx.tokens,
      running: () => running, tag: 'fo' });
    await sleep(2500);
    await a.kill9();
    live = [b.url];
    const killedAt = Date.now();
    await sleep(7000);
    running = false;
    const stats = await load;

    await waitReady(b, 20_000);
    const after = await owners(b);
    expect([...after.values()].every((o) => o === 'pod-b:active')).toBe(true);
    const viaA = stats.attempts.filter((x) => x.via === a.url && x.ack !== null).length;
    const acked = stats.attempts.filter((x) => x.ack !== null).length;
    process.stdout.write(`failover: ${acked} acknowledged (${viaA} by pod A), ` +
      `${stats.retries} retries, takeover within ${Date.now() - killedAt} ms of the kill\n`);
    expect(viaA).toBeGreaterThan(50);
    expect(acked).toBeGreaterThan(viaA);
    expect(stats.nonRetryable).toEqual([]);
    expect(await verifyLedger(b.url, fx.tokens, stats.attempts)).toEqual([]);
    failed = false;
    await cleanUp();
  }, 110_000);
});
