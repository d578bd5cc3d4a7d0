// kill -9 of an embedded pod, then a restart with another worker layout: the workers'
// write-ahead logs are settled before the new workers open, and nothing acknowledged is lost.

import { readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { LedgerHttpClient } from '../protocol/client.js';
import { assertBuilt } from './support/built.js';
import { clusterFixture, logEvents, startPodProcess, waitReady, type ClusterFixture,
  type PodProcess } from './support/pod.js';

const TENANTS = ['emb-a', 'emb-b', 'emb-c', 'emb-d', 'emb-e', 'emb-f'];
const PAYMENTS = 40;
let fx: ClusterFixture | null = null;
const pods: PodProcess[] = [];

afterAll(async () => {
  for (const p of pods) await p.stop();
  if (fx !== null) rmSync(fx.root, { recursive: true, force: true });
});

async function start(f: ClusterFixture, workers: number): Promise<PodProcess> {
  const pod = await startPodProcess(f, 'solo', { LEDGER_WORKERS: String(workers) },
    { built: true });
  pods.push(pod);
  await waitReady(pod);
  return pod;
}

describe('embedded pod killed, restarted with more workers', () => {
  test('every acknowledged payment is there; the logs were settled at start', async () => {
    assertBuilt();
    const f = (fx = await clusterFixture({ pgUrls: [], tenants: TENANTS, shardCount: 8 }));
    const first = await start(f, 1);
    const client = (pod: PodProcess, t: string) =>
      new LedgerHttpClient(pod.url, f.tokens.get(t) ?? '');
    await Promise.all(TENANTS.map(async (t) => {
      const c = client(first, t);
      expect((await c.createAccount({ id: 'src', currencyCode: 'USD', allowNegative: true }))
        .status).toBe(201);
      expect((await c.createAccount({ id: 'dst', currencyCode: 'USD' })).status).toBe(201);
      for (let i = 0; i < PAYMENTS; i++) {
        const r = await c.transfer({ id: `p${i}`, fromAccountId: 'src', toAccountId: 'dst',
          amount: '1.00', currencyCode: 'USD' });
        expect(r.status).toBe(201);
      }
    }));
    await first.kill9();
    const wal = path.join(f.root, 'solo', 'wal');
    expect(readdirSync(wal).filter((n) => n.endsWith('.log')).length).toBe(1);

    const second = await start(f, 2); // the one log covers both new workers' shards
    expect(logEvents(second, 'journal_logs_settled')).toEqual([
      expect.objectContaining({ shards: 8 })]);
    for (const t of TENANTS) {
      const c = client(second, t);
      const dst = await c.getAccount('dst');
      expect(dst.status).toBe(200);
      expect((dst.body as { balanceMinor: string }).balanceMinor).toBe(String(PAYMENTS * 100));
      const again = await c.transfer({ id: 'p0', fromAccountId: 'src', toAccountId: 'dst',
        amount: '1.00', currencyCode: 'USD' });
      expect(again.status).toBe(200); // the original, not a second payment
    }
  }, 90_000);
});
