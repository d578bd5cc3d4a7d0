// Redis snapshots in the real worker path: recovery from a Redis snapshot + journal tail equals
// a full replay (stateDigest), corrupt or foreign snapshots never yield wrong state, and the
// actor host keeps acknowledging payments while Redis is hung, killed or was never there.

import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { FileJournal } from '../persistence/journal-file.js';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import type { Snapshot, SnapshotStore } from '../protocol/storage.js';
import { encodeEnvelopes } from '../protocol/envelope-codec.js';
import type { Command, Envelope, Outcome } from '../protocol/types.js';
import { startActorHost, type ActorHost } from '../shards/actor-host.js';
import {
  ActorWorker, recoverActor, type StatusReply, type WorkerConfig,
} from '../shards/actor-worker.js';
import { stateDigest } from '../shards/snapshot-codec.js';
import { redisNamespace, freePort, startPrivateRedis } from './support/redis.js';
import type { TransferCmd } from '../protocol/types.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function workDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-redis-'));
  dirs.push(dir);
  return dir;
}

function transferCmd(id: string, from: string, to: string, amount: bigint): TransferCmd {
  return { op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'EUR', description: null, paymentTypeId: null, pending: false,
    timeoutSeconds: null };
}

const none: SnapshotStore = {
  save: async () => undefined, loadNewest: async () => null, close: async () => undefined,
};

function open(id: string): Command {
  return { op: 'createAccount', id, currencyCode: 'EUR', allowNegative: id === 'fund',
    metadata: '{}' };
}

/** Batch n of a shard's business: accounts first, then posts, holds, post-pendings, voids. */
function businessBatch(n: number): Envelope[] {
  const out: Envelope[] = [];
  for (const tenant of ['ta', 'tb']) {
    if (n === 0) {
      for (const id of ['fund', 'u0', 'u1', 'u2', 'u3']) out.push({ tenant, cmd: open(id) });
      continue;
    }
    for (let k = 0; k < 40; k++) {
      const id = `x${n}-${k}`;
      const cmd = transferCmd(id, k % 3 === 0 ? 'fund' : `u${k % 4}`, `u${(k + 1) % 4}`,
        BigInt(1 + ((n * 40 + k) % 50)));
      if (k % 5 === 1) out.push({ tenant, cmd: { ...cmd, pending: true, timeoutSeconds: 3600 } });
      else out.push({ tenant, cmd });
      if (k % 5 === 2) out.push({ tenant, cmd: { op: 'post', id: `x${n}-${k - 1}`,
        amountMinor: null } });
    }
    if (n > 1) out.push({ tenant, cmd: { op: 'void', id: `x${n - 1}-6` } });
  }
  return out;
}

function config(snapshotEvery: number, snapshotSeconds = 0, tickMs = 0): WorkerConfig {
  return { workerIndex: 0, shards: [0, 1], epoch: 1, snapshotEvery, snapshotSeconds,
    maxPendingRows: 1_000_000, verify: true, tickMs };
}

/** Runs batches [from, to) through a real ActorWorker (tenant ta → shard 0, tb → shard 1). */
async function runWorker(dataDir: string, snapshots: SnapshotStore, from: number, to: number,
  snapshotEvery = 150) {
  const worker = new ActorWorker(config(snapshotEvery),
    { journal: new FileJournal(dataDir), snapshots });
  await worker.start();
  for (let n = from; n < to; n++) {
    const envelopes = businessBatch(n);
    const shards = Uint16Array.from(envelopes.map((e) => (e.tenant === 'ta' ? 0 : 1)));
    await worker.handle({ kind: 'batch', now: 1_700_000_000_000 + n * 1000, shards,
      envelopes: encodeEnvelopes(envelopes) });
    await new Promise((r) => setImmediate(r)); // let snapshot saves of this batch start
  }
  await new Promise((r) => setTimeout(r, 200)); // saves run after the commit; let them land
  await worker.handle({ kind: 'shutdown' });
}

async function recovered(dataDir: string, snapshots: SnapshotStore, shard: number) {
  const journal = new FileJournal(dataDir);
  await journal.open([0, 1], 1);
  try {
    const actor = await recoverActor({ journal, snapshots }, shard);
    return { digest: stateDigest(actor.state), head: journal.head(shard).sequence };
  } finally {
    await journal.close();
  }
}

describe('recovery from a Redis snapshot plus the journal tail', () => {
  let cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanup) await c();
    cleanup = [];
  });

  /** A namespace and two stores on it: the worker's (closed by its shutdown) and ours. */
  async function redisStores(): Promise<{ worker: RedisSnapshotStore; store: RedisSnapshotStore;
    prefix: string; ns: Awaited<ReturnType<typeof redisNamespace>> }> {
    const ns = await redisNamespace();
    const make = () => new RedisSnapshotStore(ns.url, { keyPrefix: ns.prefix, chunkBytes: 4096 });
    const worker = make();
    const store = make();
    cleanup.push(async () => {
      await worker.close();
      await store.close();
      await ns.cleanup();
    });
    return { worker, store, prefix: ns.prefix, ns };
  }

  it('snapshots a shard with new entries once its interval has passed, without traffic',
    async () => {
      const dataDir = path.join(workDir(), 'data');
      const { worker: snapshots, store } = await redisStores();
      const worker = new ActorWorker(config(0, 1, 100),
        { journal: new FileJournal(dataDir), snapshots });
      await worker.start();
      try {
        const envelopes = businessBatch(0).filter((e) => e.tenant === 'ta');
        await worker.handle({ kind: 'batch', now: 1_700_000_000_000, shards:
          Uint16Array.from(envelopes.map(() => 0)), envelopes: encodeEnvelopes(envelopes) });
        // snapshotEvery 0: by count it never would, so a snapshot is the time trigger's
        const deadline = Date.now() + 5000;
        let snap = await store.loadNewest(0);
        while (snap === null && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
          snap = await store.loadNewest(0);
        }
        const status = (await worker.handle({ kind: 'status' })) as StatusReply;
        const shard0 = status.shards.find((s) => s.shard === 0);
        expect(snap?.head.sequence).toBe(shard0?.lastSequence);
        expect(await store.loadNewest(1)).toBeNull(); // no new entries: nothing to snapshot
      } finally {
        await worker.handle({ kind: 'shutdown' });
      }
    });

  it('gives the same state digest as a full replay, also after the newest is corrupted',
    async () => {
      const dataDir = path.join(workDir(), 'data');
      const { worker, store, prefix, ns } = await redisStores();
      await runWorker(dataDir, worker, 0, 30);
      await runWorker(dataDir, none, 30, 33, 0); // a tail no snapshot covers
      for (const shard of [0, 1]) {
        const snap = await store.loadNewest(shard);
        const full = await recovered(dataDir, none, shard);
        expect(snap).not.toBeNull();
        expect(snap?.head.sequence).toBeLessThan(full.head); // a tail is replayed too
        expect((await recovered(dataDir, store, shard)).digest).toBe(full.digest);
        const newest = snap?.head.sequence ?? 0;
        await ns.client.setrange(`${prefix}snap:${shard}:${newest}:1`, 10, 'garbage');
        const older = await store.loadNewest(shard);
        expect(older?.head.sequence).toBeLessThan(newest);
        expect((await recovered(dataDir, store, shard)).digest).toBe(full.digest);
      }
    });

  it('never serves a snapshot that is not on the journal chain: full replay instead', async () => {
    const dataDir = path.join(workDir(), 'data');
    const { worker, store } = await redisStores();
    await runWorker(dataDir, worker, 0, 10);
    const good = await store.loadNewest(0);
    if (good === null) throw new Error('no snapshot was written');
    const forged: Snapshot = { ...good, head: { ...good.head, hash: new Uint8Array(32) } };
    await store.save(forged); // same sequence, wrong chain position (e.g. another ledger's)
    expect((await store.loadNewest(0))?.head.hash).toEqual(Buffer.alloc(32));
    const full = await recovered(dataDir, none, 0);
    expect((await recovered(dataDir, store, 0)).digest).toBe(full.digest);
  });
});

function send(host: ActorHost, tenant: string, cmd: Command): Promise<Outcome> {
  return new Promise((resolve) => host.submit(tenant, cmd, resolve));
}

async function startHost(dataDir: string, redisUrl: string): Promise<ActorHost> {
  return startActorHost({
    workerUrl: new URL('../src/shard-worker.ts', import.meta.url),
    storage: { kind: 'file', dataDir, redisUrl },
    shardCount: 4, workers: 2, verify: true, snapshotEvery: 25, tickMs: 0,
  });
}

/** Published snapshot indexes in a Redis (waits up to 2 s for the first saves to land). */
async function snapshotsIn(url: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < 40; i++) {
      const found = (await client.keys('ledger:snaps:*')).length;
      if (found > 0) return found;
      await new Promise((r) => setTimeout(r, 50));
    }
    return 0;
  } finally {
    client.disconnect();
  }
}

const TENANTS = ['p0', 'p1', 'p2', 'p3', 'p4', 'p5'];

/** One round of 60 transfers; returns how many were acknowledged ok. */
async function round(host: ActorHost, tag: string): Promise<number> {
  const sends: Promise<Outcome>[] = [];
  for (let k = 0; k < 60; k++) {
    const tenant = TENANTS[k % TENANTS.length] as string;
    sends.push(send(host, tenant, transferCmd(`${tag}-${k}`, 'fund', `u${k % 4}`, 1n)));
  }
  return (await Promise.all(sends)).filter((o) => o.ok).length;
}

async function balanceOf(host: ActorHost, tenant: string, id: string): Promise<unknown> {
  const o = await send(host, tenant, { op: 'getAccount', id });
  return o.ok ? o.value : o.error.code;
}

describe('payments never stop because Redis is down', () => {
  it('acknowledges while Redis is hung, then killed, and restarts without it', async () => {
    const dataDir = path.join(workDir(), 'data');
    const redis = await startPrivateRedis();
    let host = await startHost(dataDir, redis.url);
    try {
      for (const t of TENANTS) {
        for (const id of ['fund', 'u0', 'u1', 'u2', 'u3']) {
          expect((await send(host, t, open(id))).ok).toBe(true);
        }
      }
      let acked = 0;
      for (let r = 0; r < 3; r++) acked += await round(host, `up${r}`);
      expect(await snapshotsIn(redis.url)).toBeGreaterThan(0); // Redis was really in use
      redis.pause();
      for (let r = 0; r < 5; r++) acked += await round(host, `hung${r}`);
      await redis.kill();
      for (let r = 0; r < 5; r++) acked += await round(host, `dead${r}`);
      expect(acked).toBe(13 * 60);
      const before = await Promise.all(TENANTS.map((t) => balanceOf(host, t, 'fund')));
      await host.close();
      host = await startHost(dataDir, redis.url); // Redis still gone: full journal replay
      expect(await Promise.all(TENANTS.map((t) => balanceOf(host, t, 'fund')))).toEqual(before);
      expect(await round(host, 'after')).toBe(60);
    } finally {
      await host.close();
      await redis.kill();
    }
  });

  it('starts and serves with Redis on a port nobody listens on', async () => {
    const dataDir = path.join(workDir(), 'data');
    const host = await startHost(dataDir, `redis://127.0.0.1:${await freePort()}`);
    try {
      for (const t of TENANTS) {
        for (const id of ['fund', 'u0', 'u1', 'u2', 'u3']) await send(host, t, open(id));
      }
      let acked = 0;
      for (let r = 0; r < 5; r++) acked += await round(host, `r${r}`);
      expect(acked).toBe(5 * 60);
    } finally {
      await host.close();
    }
  });
});
