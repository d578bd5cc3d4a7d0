// RedisSnapshotStore against the real local Redis: chunked round trip, corrupt and incomplete
// snapshots skipped in favour of the previous one, keep-2 retention, and bounded failure when
// Redis is down or hung (a private redis-server, never the shared one).

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { RedisSnapshotStore, SnapshotStoreError } from './snapshot-redis.js';
import type { Snapshot } from './journal.js';
import { freePort, redisNamespace, startPrivateRedis } from '../test/support/redis.js';

let ns: Awaited<ReturnType<typeof redisNamespace>>;
let stores: RedisSnapshotStore[] = [];
let skipped: string[] = [];

beforeEach(async () => {
  ns = await redisNamespace();
  stores = [];
  skipped = [];
});
afterEach(async () => {
  for (const s of stores) await s.close();
  await ns.cleanup();
});

function store(opts: { chunkBytes?: number; url?: string; timeoutMs?: number } = {}) {
  const s = new RedisSnapshotStore(opts.url ?? ns.url, {
    keyPrefix: ns.prefix, chunkBytes: opts.chunkBytes ?? 1000,
    commandTimeoutMs: opts.timeoutMs ?? 2000, retryAfterMs: 100,
    log: (event, f) => skipped.push(`${event}: ${String(f.reason ?? f.error)}`),
  });
  stores.push(s);
  return s;
}

function snap(sequence: number, bytes = 4321, shard = 3): Snapshot {
  return {
    shard, epoch: 7, head: { sequence, hash: new Uint8Array(32).fill(sequence & 0xff) },
    state: randomBytes(bytes),
  };
}

async function keys(client: Redis, pattern: string): Promise<string[]> {
  return (await client.keys(`${ns.prefix}${pattern}`)).map((k) => k.slice(ns.prefix.length))
    .sort();
}

describe('RedisSnapshotStore', () => {
  it('round-trips a chunked snapshot and returns null when there is none', async () => {
    const s = store({ chunkBytes: 64 * 1024 });
    expect(await s.loadNewest(3)).toBeNull();
    const big = snap(1000, 5 * 1024 * 1024 + 17);
    await s.save(big);
    const got = await s.loadNewest(3);
    expect(got?.head.sequence).toBe(1000);
    expect(got?.epoch).toBe(7);
    expect(Buffer.from(got?.head.hash ?? []).equals(Buffer.from(big.head.hash))).toBe(true);
    expect(Buffer.from(got?.state ?? []).equals(Buffer.from(big.state))).toBe(true);
    expect((await keys(ns.client, 'snap:3:1000:*')).length).toBe(81);
    expect(await s.loadNewest(4)).toBeNull();
  });

  it('checks loads against the sha256 a snapshot comes with, not hashing it again', async () => {
    const s = store();
    const s10 = snap(10);
    await s.save({ ...s10, sha256: createHash('sha256').update(s10.state).digest() });
    await s.save({ ...snap(20), sha256: new Uint8Array(32) }); // not the bytes' hash
    expect((await s.loadNewest(3))?.head.sequence).toBe(10); // 20 fails its check
    expect(skipped.some((line) => /sha256 mismatch/.test(line))).toBe(true);
  });

  it('keeps the two newest snapshots and removes every key of older ones', async () => {
    const s = store();
    for (const seq of [10, 20, 30, 40]) await s.save(snap(seq));
    expect((await s.loadNewest(3))?.head.sequence).toBe(40);
    expect(await ns.client.zrange(`${ns.prefix}snaps:3`, 0, '-1')).toEqual(['30', '40']);
    const left = await keys(ns.client, 'snap:3:*');
    expect(left.every((k) => k.startsWith('snap:3:30') || k.startsWith('snap:3:40'))).toBe(true);
    expect(left.length).toBe(2 * (1 + 5));
  });

  it('falls back to the previous snapshot when a chunk of the newest is corrupt', async () => {
    const s = store();
    await s.save(snap(10));
    await s.save(snap(20));
    const key = `${ns.prefix}snap:3:20:2`;
    const chunk = await ns.client.getBuffer(key);
    if (chunk === null) throw new Error('chunk 2 missing');
    chunk[100] = (chunk[100] ?? 0) ^ 1;
    await ns.client.set(key, chunk);
    expect((await s.loadNewest(3))?.head.sequence).toBe(10);
    await ns.client.del(key);
    expect((await s.loadNewest(3))?.head.sequence).toBe(10);
    expect(skipped).toEqual(['snapshot_skipped: sha256 mismatch (corrupt chunk)',
      'snapshot_skipped: chunk 2 missing']);
  });

  it('ignores a snapshot whose manifest is missing or damaged, and a save that died', async () => {
    const s = store();
    await s.save(snap(10));
    await s.save(snap(20));
    await ns.client.del(`${ns.prefix}snap:3:20`);
    expect((await s.loadNewest(3))?.head.sequence).toBe(10);
    await s.save(snap(20));
    await ns.client.hset(`${ns.prefix}snap:3:20`, 'length', 'x');
    expect((await s.loadNewest(3))?.head.sequence).toBe(10);
    // A save that died after its chunks: not published, so never read, and pruned later.
    await ns.client.zadd(`${ns.prefix}snaps-pending:3`, 25, '25:3');
    for (let i = 0; i < 3; i++) await ns.client.set(`${ns.prefix}snap:3:25:${i}`, 'x');
    expect((await s.loadNewest(3))?.head.sequence).toBe(10);
    await s.save(snap(30));
    expect(await keys(ns.client, 'snap:3:25*')).toEqual([]);
    expect(skipped).toEqual(['snapshot_skipped: manifest missing',
      'snapshot_skipped: manifest length is not an integer',
      'snapshot_skipped: manifest length is not an integer']);
  });

  it('re-saving the same sequence replaces it without touching the older one', async () => {
    const s = store();
    await s.save(snap(10));
    await s.save(snap(20, 9000));
    const again = snap(20, 2500);
    await s.save(again);
    const got = await s.loadNewest(3);
    expect(Buffer.from(got?.state ?? []).equals(Buffer.from(again.state))).toBe(true);
    expect(await ns.client.zrange(`${ns.prefix}snaps:3`, 0, '-1')).toEqual(['10', '20']);
  });
});

describe('RedisSnapshotStore with Redis down', () => {
  it('fails fast on a port nobody listens on: save rejects, load returns null', async () => {
    const s = store({ url: `redis://127.0.0.1:${await freePort()}`, timeoutMs: 300 });
    const started = performance.now();
    await expect(s.save(snap(10))).rejects.toBeInstanceOf(SnapshotStoreError);
    expect(await s.loadNewest(3)).toBeNull();
    expect(performance.now() - started).toBeLessThan(3000);
    expect(skipped).toHaveLength(1); // one line per outage, not per call
  });

  it('gives up on a hung server within the command timeout and recovers after it', async () => {
    const redis = await startPrivateRedis();
    try {
      const s = store({ url: redis.url, timeoutMs: 300 });
      await s.save(snap(10));
      redis.pause();
      const started = performance.now();
      await expect(s.save(snap(20, 100_000))).rejects.toMatchObject({
        code: 'snapshot_store_unavailable', retryable: true });
      expect(await s.loadNewest(3)).toBeNull();
      expect(performance.now() - started).toBeLessThan(5000);
      redis.resume();
      let back = null;
      for (let i = 0; i < 50 && back === null; i++) {
        back = await s.loadNewest(3);
        if (back === null) await new Promise((r) => setTimeout(r, 100));
      }
      expect(back?.head.sequence).toBe(10);
      await s.save(snap(30));
      expect((await s.loadNewest(3))?.head.sequence).toBe(30);
      expect(skipped[skipped.length - 1]).toMatch(/^snapshot_store_recovered/);
    } finally {
      await redis.kill();
    }
  });
});
