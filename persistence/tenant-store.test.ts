import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createTestDatabases, type TestDatabases } from '../test/support/pg.js';
import { parseTenantChange, PgTenantStore, type TenantChange } from './tenant-store.js';

function hash(seed: string): string {
  return createHash('sha256').update(seed).digest('hex');
}

function until(check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = (): void => {
      if (check()) return resolve();
      if (Date.now() > deadline) return reject(new Error('condition not met in time'));
      setTimeout(tick, 5);
    };
    tick();
  });
}

describe('PgTenantStore', () => {
  let dbs: TestDatabases;
  let store: PgTenantStore;
  beforeAll(async () => {
    dbs = await createTestDatabases(1);
    store = new PgTenantStore(dbs.urls[0] as string, { podId: 'store-test' });
    await store.init();
  });
  afterAll(async () => {
    await store?.close();
    await dbs?.drop();
  });

  test('creates a tenant and its first token at once; a taken id writes nothing', async () => {
    expect(await store.createTenant('acme', hash('a1'))).toBe(true);
    expect(await store.createTenant('acme', hash('a2'))).toBe(false);
    const rows = await store.loadAll();
    expect(rows.tenants).toEqual(['acme']);
    expect(rows.tokens).toEqual([{ hash: hash('a1'), tenant: 'acme' }]);
  });

  test('adds tokens, retires the oldest past the bound, and knows no unknown tenant', async () => {
    await store.createTenant('rot', hash('r0'));
    expect(await store.addToken('rot', hash('r1'), 3)).toEqual([]);
    expect(await store.addToken('rot', hash('r2'), 3)).toEqual([]);
    expect(await store.addToken('rot', hash('r3'), 3)).toEqual([hash('r0')]);
    const left = (await store.loadAll()).tokens.filter((t) => t.tenant === 'rot');
    expect(left.map((t) => t.hash).sort()).toEqual([hash('r1'), hash('r2'), hash('r3')].sort());
    expect(await store.addToken('nobody', hash('n1'), 3)).toBeNull();
  });

  test('concurrent token issues never leave more than the bound', async () => {
    await store.createTenant('busy', hash('busy'));
    const issues = Array.from({ length: 12 }, (_, i) => store.addToken('busy', hash(`b${i}`), 4));
    await Promise.all(issues);
    const left = (await store.loadAll()).tokens.filter((t) => t.tenant === 'busy');
    expect(left.length).toBe(4);
  });

  test('announces tenants, tokens and removals at commit', async () => {
    const seen: TenantChange[] = [];
    const listener = new PgTenantStore(dbs.urls[0] as string, { podId: 'listener' });
    try {
      await listener.listen((c) => seen.push(c), () => undefined, () => undefined);
      await store.createTenant('noisy', hash('x0'));
      await store.addToken('noisy', hash('x1'), 1);
      await until(() => seen.length >= 4);
      expect(seen).toEqual([
        { kind: 'tenant', tenant: 'noisy' },
        { kind: 'token', tenant: 'noisy', hash: hash('x0') },
        { kind: 'token', tenant: 'noisy', hash: hash('x1') },
        { kind: 'removed', tenant: 'noisy', hash: hash('x0') },
      ]);
    } finally {
      await listener.close();
    }
  });

  test('imports a file tenant once; an id PostgreSQL has is left alone', async () => {
    expect(await store.importTenant('old', [hash('o1'), hash('o2')])).toBe(true);
    expect(await store.importTenant('old', [hash('o3')])).toBe(false);
    const mine = (await store.loadAll()).tokens.filter((t) => t.tenant === 'old');
    expect(mine.map((t) => t.hash).sort()).toEqual([hash('o1'), hash('o2')].sort());
  });

  test('refuses a hash that is not 32 bytes', async () => {
    await expect(store.createTenant('short', 'abcd')).rejects.toThrow(RangeError);
  });

  test('parses only the payloads its trigger writes', async () => {
    expect(parseTenantChange('t acme')).toEqual({ kind: 'tenant', tenant: 'acme' });
    expect(parseTenantChange(`- ${hash('z')} acme`)).toEqual(
      { kind: 'removed', tenant: 'acme', hash: hash('z') });
    for (const bad of ['', 't', 't a b', '+ abc acme', `+ ${hash('z')}`, `* ${hash('z')} a`]) {
      expect(parseTenantChange(bad)).toBeNull();
    }
  });
});
