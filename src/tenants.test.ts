import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileTenantRegistry, TOKENS_PER_TENANT_MAX } from './tenants.js';

describe('FileTenantRegistry', () => {
  let dir = '';
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'tenants-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a tenant whose token authenticates as it', async () => {
    const reg = await FileTenantRegistry.open(dir);
    const res = await reg.createTenant('acme');
    if (!res.ok) throw new Error(res.error.code);
    expect(res.token).toMatch(/^sl_[A-Za-z0-9_-]{43}$/);
    expect(reg.authenticate(res.token)).toBe('acme');
    expect(reg.authenticate(res.token + 'x')).toBeNull();
    expect(reg.authenticate('')).toBeNull();
    expect(reg.authenticate('x'.repeat(10_000))).toBeNull();
  });

  it('stores only hashes, and survives a reopen', async () => {
    const reg = await FileTenantRegistry.open(dir);
    const res = await reg.createTenant('acme');
    if (!res.ok) throw new Error(res.error.code);
    const text = await readFile(path.join(dir, 'tenants.json'), 'utf8');
    expect(text).not.toContain(res.token);
    expect(text).not.toContain(res.token.slice(3));
    const again = await FileTenantRegistry.open(dir);
    expect(again.authenticate(res.token)).toBe('acme');
    expect(again.ids()).toEqual(['acme']);
  });

  it('rejects a duplicate tenant and a bad id', async () => {
    const reg = await FileTenantRegistry.open(dir);
    await reg.createTenant('acme');
    const dup = await reg.createTenant('acme');
    expect(dup.ok ? null : dup.error.code).toBe('tenant_exists');
    const bad = await reg.createTenant('not ok/');
    expect(bad.ok ? null : bad.error.code).toBe('invalid_id');
    const long = await reg.createTenant('a'.repeat(65));
    expect(long.ok ? null : long.error.code).toBe('invalid_id');
  });

  it('issues further tokens; all work; unknown tenant gets null', async () => {
    const reg = await FileTenantRegistry.open(dir);
    const first = await reg.createTenant('acme');
    if (!first.ok) throw new Error(first.error.code);
    const second = await reg.issueToken('acme');
    expect(second).not.toBeNull();
    expect(reg.authenticate(first.token)).toBe('acme');
    expect(reg.authenticate(second ?? '')).toBe('acme');
    expect(await reg.issueToken('nobody')).toBeNull();
  });

  it('retires the oldest token past the per-tenant bound', async () => {
    const reg = await FileTenantRegistry.open(dir);
    const first = await reg.createTenant('acme');
    if (!first.ok) throw new Error(first.error.code);
    const issued = await Promise.all(
      Array.from({ length: TOKENS_PER_TENANT_MAX }, () => reg.issueToken('acme')),
    );
    expect(reg.authenticate(first.token)).toBeNull();
    for (const t of issued) expect(reg.authenticate(t ?? '')).toBe('acme');
    const reopened = await FileTenantRegistry.open(dir);
    expect(reopened.authenticate(first.token)).toBeNull();
    expect(reopened.authenticate(issued.at(-1) ?? '')).toBe('acme');
  });

  it('refuses to start on a corrupt file instead of forgetting tenants', async () => {
    const reg = await FileTenantRegistry.open(dir);
    await reg.createTenant('acme');
    const { writeFile } = await import('node:fs/promises');
    await writeFile(path.join(dir, 'tenants.json'), '{"version":1,');
    await expect(FileTenantRegistry.open(dir)).rejects.toThrow();
  });
});
