import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, test, vi } from 'vitest';
import { PgTenantStore, type TenantRows } from '../persistence/tenant-store.js';
import { ADMIN_TOKEN, startPod } from '../test/api-support.js';
import { createTestDatabases, pgUrl, type TestDatabases } from '../test/support/pg.js';
import { PgTenantRegistry, type PgTenantRegistryOptions } from './tenants-pg.js';
import { FileTenantRegistry, newToken, TOKENS_PER_TENANT_MAX } from './tenants.js';

const log = pino({ level: 'silent' });
let dbs: TestDatabases;
const open: PgTenantRegistry[] = [];

beforeAll(async () => {
  dbs = await createTestDatabases(2);
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const r of open.splice(0)) await r.close();
});
afterAll(async () => {
  await dbs?.drop();
});

async function pod(
  podId: string,
  more: Partial<PgTenantRegistryOptions> = {},
): Promise<PgTenantRegistry> {
  const reg = await PgTenantRegistry.open({ url: dbs.urls[0] as string, podId, log, ...more });
  open.push(reg);
  return reg;
}

/** Polls `check` every millisecond: the time until it held, in ms (throws after `ms`). */
async function timeUntil(check: () => boolean, ms = 5000): Promise<number> {
  const start = performance.now();
  while (!check()) {
    if (performance.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1));
  }
  return performance.now() - start;
}

async function created(reg: PgTenantRegistry, id: string): Promise<string> {
  const res = await reg.createTenant(id);
  if (!res.ok) throw new Error(res.error.code);
  return res.token;
}

describe('PgTenantRegistry across pods', () => {
  test('a token created on pod A authenticates on pod B by notification', async () => {
    const a = await pod('a');
    const b = await pod('b');
    const token = await created(a, 'notify-1');
    expect(a.authenticate(token)).toBe('notify-1');
    const ms = await timeUntil(() => b.authenticate(token) === 'notify-1');
    process.stdout.write(`tenant token propagation by NOTIFY: ${ms.toFixed(1)} ms\n`);
    expect(b.has('notify-1')).toBe(true);
  });

  test('without notifications, an unknown token triggers a reload; the retry works', async () => {
    const a = await pod('a');
    const b = await pod('b', { listen: false });
    const token = await created(a, 'miss-1');
    const start = performance.now();
    expect(b.authenticate(token)).toBeNull(); // 401 now, reload scheduled
    await timeUntil(() => b.authenticate(token) === 'miss-1', 1000);
    const ms = performance.now() - start;
    process.stdout.write(`tenant token propagation by unknown-token reload: ${ms.toFixed(1)} ms\n`);
  });

  test('a flood of unknown tokens costs at most one reload per gap', async () => {
    const b = await pod('b', { listen: false, missReloadGapMs: 200 });
    const loads = vi.spyOn(PgTenantStore.prototype, 'loadAll');
    const start = Date.now();
    let calls = 0;
    while (Date.now() - start < 1000) {
      for (let i = 0; i < 500; i++, calls++) expect(b.authenticate(newToken())).toBeNull();
      for (let i = 0; i < 500; i++) expect(b.authenticate(`junk-${i}`)).toBeNull();
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(calls).toBeGreaterThan(10_000);
    expect(loads.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(loads.mock.calls.length).toBeLessThanOrEqual(7); // 1000 ms / 200 ms, +1, +1 queued
  });

  test('garbage credentials never trigger a reload', async () => {
    const b = await pod('b', { listen: false, missReloadGapMs: 1 });
    const loads = vi.spyOn(PgTenantStore.prototype, 'loadAll');
    for (const t of ['x', 'Bearer', 'sl_short', 'y'.repeat(300), newToken() + 'x']) {
      expect(b.authenticate(t)).toBeNull();
    }
    await new Promise((r) => setTimeout(r, 50));
    expect(loads).not.toHaveBeenCalled();
  });

  test('tenant_exists for an id another pod took, even before this pod heard of it', async () => {
    const a = await pod('a');
    const b = await pod('b', { listen: false });
    await created(a, 'taken-1');
    expect(b.has('taken-1')).toBe(false);
    const dup = await b.createTenant('taken-1');
    expect(dup.ok ? null : dup.error.code).toBe('tenant_exists');
    expect(b.has('taken-1')).toBe(true);
    const bad = await b.createTenant('no spaces');
    expect(bad.ok ? null : bad.error.code).toBe('invalid_id');
  });

  test('issues tokens for a tenant of another pod; a retired token fails everywhere', async () => {
    const a = await pod('a');
    const b = await pod('b');
    const first = await created(a, 'rot-1');
    await timeUntil(() => a.authenticate(first) !== null && b.authenticate(first) !== null);
    const fresh = new Set<string>();
    for (let i = 0; i < TOKENS_PER_TENANT_MAX; i++) {
      const t = await b.issueToken('rot-1');
      if (t === null) throw new Error('issueToken: unknown tenant');
      fresh.add(t);
    }
    expect(b.authenticate(first)).toBeNull();
    await timeUntil(() => a.authenticate(first) === null);
    for (const t of fresh) expect(a.authenticate(t)).toBe('rot-1');
    expect(await b.issueToken('nobody')).toBeNull();
  });

  test('a reload that started before a change does not undo it', async () => {
    const a = await pod('a');
    const b = await pod('b', { missReloadGapMs: 1 });
    const original = PgTenantStore.prototype.loadAll;
    let release = (): void => undefined;
    const gate = new Promise<void>((r) => { release = r; });
    let read = false;
    vi.spyOn(PgTenantStore.prototype, 'loadAll').mockImplementation(
      async function (this: PgTenantStore): Promise<TenantRows> {
        const rows = await original.call(this);
        read = true;
        await gate;
        return rows;
      });
    b.authenticate(newToken()); // starts a reload, which reads the rows and then waits
    await timeUntil(() => read);
    const token = await created(a, 'race-1');
    await timeUntil(() => b.authenticate(token) === 'race-1'); // by notification
    release();
    // the stale rows have replaced the map; any reload queued meanwhile has not finished yet
    await new Promise((r) => setImmediate(r));
    expect(b.authenticate(token)).toBe('race-1');
    expect(b.has('race-1')).toBe(true);
  });

  test('refuses to start when database 0 cannot be reached', async () => {
    const url = pgUrl('ledger_test_000000000000_9'); // never created
    await expect(PgTenantRegistry.open({ url, podId: 'x', log })).rejects.toThrow(/does not exist/);
  });

  test('imports an embedded tenants.json for ids PostgreSQL does not have', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'tenants-import-'));
    try {
      const file = await FileTenantRegistry.open(dir);
      const old = await file.createTenant('from-file');
      const clash = await file.createTenant('taken-2');
      const a = await pod('a');
      const mine = await created(a, 'taken-2');
      if (!old.ok || !clash.ok) throw new Error('file tenants');
      const b = await pod('b', { dataDir: dir });
      expect(b.authenticate(old.token)).toBe('from-file');
      expect(b.authenticate(clash.token)).toBeNull(); // PostgreSQL's taken-2 is another tenant
      expect(b.authenticate(mine)).toBe('taken-2');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** Refuses (true) or allows new connections to test database 1, ending the current ones. */
async function cutOff(refuse: boolean): Promise<void> {
  const name = dbs.names[1] as string;
  const client = new pg.Client({ connectionString: pgUrl('postgres') });
  await client.connect();
  try {
    await client.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS ${!refuse}`);
    if (refuse) {
      await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity ' +
        'WHERE datname = $1', [name]);
    }
  } finally {
    await client.end();
  }
}

describe('PostgreSQL tenant registry in a pod', () => {
  test('admin API writes database 0; PostgreSQL down: 503, known tokens work', async () => {
    const p = await startPod({ pgUrls: [dbs.urls[1] as string] });
    try {
      const admin = (id: string): Promise<Response> => fetch(`${p.url}/admin/v1/tenants`, {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ id }),
      });
      const ok = await admin('pod-1');
      expect(ok.status).toBe(201);
      const { token } = (await ok.json()) as { token: string };
      expect((await admin('pod-1')).status).toBe(409);
      const store = new PgTenantStore(dbs.urls[1] as string, { podId: 'check' });
      expect((await store.loadAll().finally(() => store.close())).tenants).toContain('pod-1');
      expect(p.server.tenants.authenticate(token)).toBe('pod-1');

      await cutOff(true);
      const down = await admin('pod-2');
      expect(down.status).toBe(503);
      expect(((await down.json()) as { error: { code: string } }).error.code)
        .toBe('storage_unavailable');
      expect(p.server.tenants.authenticate(token)).toBe('pod-1');
      await cutOff(false);
      expect((await admin('pod-2')).status).toBe(201);
    } finally {
      await cutOff(false);
      await p.stop();
    }
  });
});
