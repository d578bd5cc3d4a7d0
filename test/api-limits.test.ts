// Limits of the real pod over HTTP: body size (413), per-tenant rate (429), shutdown (503),
// readiness. Each test starts the pod configuration it needs.

import { rm } from 'node:fs/promises';
import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { LedgerHttpClient } from '../protocol/client.js';
import { expectError, obj, startPod, type Pod } from './api-support.js';

const pods: Pod[] = [];
async function pod(overrides: Parameters<typeof startPod>[0]): Promise<Pod> {
  const p = await startPod(overrides);
  pods.push(p);
  return p;
}

afterEach(async () => {
  for (const p of pods.splice(0)) await p.stop();
});

/** A chunked POST (no Content-Length) through node:http, so the size is found mid-stream. */
type Raw = { status: number; body: string };

function chunkedPost(url: string, token: string, chunks: string[]): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    });
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

describe('body size', () => {
  it('answers 413 payload_too_large from Content-Length, before reading the body', async () => {
    const p = await pod({ maxBodyBytes: 4096 });
    const a = await p.tenant('t');
    const metadata = { pad: 'x'.repeat(5000) };
    const big = JSON.stringify({ id: 'x', currencyCode: 'USD', metadata });
    expectError(await a.request('POST', '/api/v1/accounts', big), 413, 'payload_too_large');
    const fits = await a.createAccount({ id: 'fits', currencyCode: 'USD' });
    expect(fits.status).toBe(201);
  });

  it('answers 413 for a chunked body that grows past the limit, and changes nothing', async () => {
    const p = await pod({ maxBodyBytes: 4096 });
    const a = await p.tenant('t');
    const head = '{"id":"grown","currencyCode":"USD","metadata":{"pad":"';
    const reply = await chunkedPost(`${p.url}/api/v1/accounts`, a.token,
      [head, 'x'.repeat(3000), 'x'.repeat(3000), '"}}']);
    expect(reply.status).toBe(413);
    expect(JSON.parse(reply.body)).toMatchObject({ error: { code: 'payload_too_large' } });
    expectError(await a.getAccount('grown'), 404, 'account_not_found');
  });

  it('accepts a chunked body within the limit', async () => {
    const p = await pod({});
    const a = await p.tenant('t');
    const reply = await chunkedPost(`${p.url}/api/v1/accounts`, a.token,
      ['{"id":"chunked",', '"currencyCode":"EUR"}']);
    expect(reply.status).toBe(201);
  });
});

describe('rate limit', () => {
  it('answers 429 rate_limited past the tenant budget, per tenant', async () => {
    const p = await pod({ rateLimitPerSecond: 5 });
    const a = await p.tenant('ta');
    const b = await p.tenant('tb');
    const replies = await Promise.all(Array.from({ length: 12 }, () => a.getAccount('none')));
    const limited = replies.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(6);
    const err = expectError(limited[0] ?? { status: 0, body: null }, 429, 'rate_limited');
    expect(err.retryable).toBe(true);
    expectError(await b.getAccount('none'), 404, 'account_not_found');
  });
});

describe('shutdown', () => {
  it('answers 503 shutting_down on open connections while the pod drains', async () => {
    const p = await pod({});
    const a = await p.tenant('t');
    await a.createAccount({ id: 'acc', currencyCode: 'USD' });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const get = (): Promise<{ status: number; body: string }> =>
      new Promise((resolve, reject) => {
        const req = http.get(`${p.url}/api/v1/accounts/acc`, {
          agent, headers: { authorization: `Bearer ${a.token}` },
        });
        req.on('response', (res) => {
          let body = '';
          res.on('data', (d: Buffer) => (body += d.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
      });
    expect((await get()).status).toBe(200); // opens the kept-alive connection
    const closing = p.server.close();
    const during = await get();
    await closing;
    agent.destroy();
    expect(during.status).toBe(503);
    expect(JSON.parse(during.body)).toMatchObject({
      error: { code: 'shutting_down', retryable: true },
    });
  });

  it('stops accepting connections once closed', async () => {
    const p = await pod({});
    const c = new LedgerHttpClient(p.url, '');
    expect((await c.request('GET', '/health/live')).status).toBe(200);
    await p.server.close();
    // a new connection (kept-alive ones get `Connection: close` on their next reply)
    const refused = await new Promise<string>((resolve) => {
      const req = http.get(`${p.url}/health/live`, { agent: false });
      req.on('response', (res) => resolve(`status ${res.statusCode ?? 0}`));
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    expect(refused).toBe('ECONNREFUSED');
  });
});

describe('restart', () => {
  it('keeps tenants, tokens, accounts and balances across a restart', async () => {
    const first = await startPod({}, true);
    const dataDir = first.config.dataDir;
    try {
      const a = await first.tenant('t');
      await a.createAccount({ id: 'src', currencyCode: 'USD', allowNegative: true });
      await a.createAccount({ id: 'dst', currencyCode: 'USD' });
      const t = { fromAccountId: 'src', toAccountId: 'dst', amount: '3.00', currencyCode: 'USD' };
      expect((await a.transfer({ ...t, id: 'kept-1' })).status).toBe(201);
      await first.stop();
      const second = await pod({ dataDir });
      const again = new LedgerHttpClient(second.url, a.token);
      expect(obj(await again.getAccount('dst')).balanceMinor).toBe('300');
      const replay = await again.transfer({ ...t, id: 'kept-1' });
      expect(replay.status).toBe(200);
    } finally {
      await first.stop();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});

describe('readiness', () => {
  it('is ready once every shard has recovered', async () => {
    const p = await pod({});
    const a = await p.tenant('t');
    await a.createAccount({ id: 'kept', currencyCode: 'USD' });
    const ready = await fetch(`${p.url}/health/ready`);
    expect(ready.status).toBe(200);
    expect(obj({ status: 200, body: await ready.json() })).toEqual({ status: 'ready' });
  });
});
