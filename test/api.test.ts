// Drives every HTTP route of API.md against a real pod (actor host, embedded journal, uWS) over
// real sockets, including each error code the HTTP API can produce.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerHttpClient } from '../protocol/client.js';
import {
  ADMIN_TOKEN,
  balances,
  eventually,
  expectError,
  obj,
  startPod,
  type Pod,
} from './api-support.js';

type Client = Awaited<ReturnType<Pod['tenant']>>;

let pod: Pod;
let a: Client;
let b: Client;

beforeAll(async () => {
  pod = await startPod();
  a = await pod.tenant('tenant-a');
  b = await pod.tenant('tenant-b');
  for (const [id, allowNegative] of [['bank', true], ['alice', false], ['bob', false]] as const) {
    expect((await a.createAccount({ id, currencyCode: 'USD', allowNegative })).status).toBe(201);
  }
  await a.createAccount({ id: 'euro', currencyCode: 'EUR' });
  const fund = await a.transfer({
    id: 'fund-alice', fromAccountId: 'bank', toAccountId: 'alice', amount: '1000.00',
    currencyCode: 'USD',
  });
  expect(fund.status).toBe(201);
});

afterAll(async () => {
  await pod.stop();
});

describe('auth', () => {
  const routes: Array<[string, string]> = [
    ['POST', '/api/v1/accounts'],
    ['GET', '/api/v1/accounts/alice'],
    ['GET', '/api/v1/accounts/alice/entries'],
    ['POST', '/api/v1/transactions'],
    ['POST', '/api/v1/transactions/batch'],
    ['GET', '/api/v1/transactions/fund-alice'],
    ['POST', '/api/v1/transactions/fund-alice/post'],
    ['POST', '/api/v1/transactions/fund-alice/void'],
  ];

  it('answers 401 unauthorized without, with an unknown, or with a non-bearer token', async () => {
    const anonymous = new LedgerHttpClient(pod.url, '');
    const unknown = new LedgerHttpClient(pod.url, 'sl_not-a-real-token');
    for (const [method, route] of routes) {
      const body = method === 'POST' ? '{}' : undefined;
      expectError(await anonymous.request(method, route, body), 401, 'unauthorized');
      expectError(await unknown.request(method, route, body), 401, 'unauthorized');
      const basic = await anonymous.request(method, route, body, {
        headers: { authorization: `Basic ${a.token}` },
      });
      expectError(basic, 401, 'unauthorized');
    }
  });
});

describe('accounts', () => {
  it('creates, replays (200) and refuses a different body (409 account_exists)', async () => {
    const body = { id: 'acc-1', currencyCode: 'JPY', metadata: { owner: 'x', n: 1 } };
    const first = await a.createAccount(body);
    expect(first.status).toBe(201);
    expect(obj(first)).toMatchObject({
      id: 'acc-1', currencyCode: 'JPY', allowNegative: false, balance: '0', balanceMinor: '0',
    });
    const replay = await a.createAccount(body);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expectError(await a.createAccount({ ...body, allowNegative: true }), 409, 'account_exists');
  });

  it('reads an account with its four totals', async () => {
    const reply = await a.getAccount('alice');
    expect(reply.status).toBe(200);
    expect(obj(reply)).toMatchObject({
      id: 'alice', currencyCode: 'USD', allowNegative: false,
      postedDebits: expect.any(String), postedCredits: expect.any(String),
      pendingDebits: expect.any(String), pendingCredits: expect.any(String),
      balance: expect.any(String), balanceMinor: expect.any(String),
    });
  });

  it('answers precise 400s for bad account bodies', async () => {
    expectError(await a.createAccount({ id: 'bad id!', currencyCode: 'USD' }), 400, 'invalid_id');
    expectError(await a.createAccount({ id: 'x1', currencyCode: 'ZZZ' }), 400, 'invalid_currency');
    const meta = await a.request('POST', '/api/v1/accounts', {
      id: 'x2', currencyCode: 'USD', metadata: [1],
    });
    expectError(meta, 400, 'invalid_metadata');
    const extra = await a.request('POST', '/api/v1/accounts', {
      id: 'x3', currencyCode: 'USD', color: 'red',
    });
    expectError(extra, 400, 'invalid_request');
    expectError(await a.request('POST', '/api/v1/accounts', '{"id": '), 400, 'invalid_json');
    expectError(await a.request('POST', '/api/v1/accounts', ''), 400, 'invalid_json');
    expectError(await a.request('POST', '/api/v1/accounts', '[1,2]'), 400, 'invalid_request');
    const deep = '['.repeat(100) + ']'.repeat(100);
    expectError(await a.request('POST', '/api/v1/accounts', deep), 400, 'invalid_request');
    expectError(await a.getAccount('no/such'), 400, 'invalid_id');
    expectError(await a.request('GET', '/api/v1/accounts/a/b/c'), 404, 'route_not_found');
    expectError(await a.getAccount('bad id'), 400, 'invalid_id');
  });

  it('answers 404 account_not_found for an unknown account', async () => {
    expectError(await a.getAccount('nobody'), 404, 'account_not_found');
  });
});

describe('transactions', () => {
  const t = (id: string, amount: string, extra: Record<string, unknown> = {}) => ({
    id, fromAccountId: 'alice', toAccountId: 'bob', amount, currencyCode: 'USD', ...extra,
  });

  it('posts a transfer (201) and replays it (200, same body); other body is 409', async () => {
    const first = await a.transfer(t('tx-1', '10.25'));
    expect(first.status).toBe(201);
    expect(obj(first)).toMatchObject({
      id: 'tx-1', status: 'posted', fromAccountId: 'alice', toAccountId: 'bob',
      amount: '10.25', amountMinor: '1025', currencyCode: 'USD',
      createdAt: expect.any(String), sequence: expect.any(Number),
    });
    const replay = await a.transfer(t('tx-1', '10.25'));
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(first.body);
    expectError(await a.transfer(t('tx-1', '10.26')), 409, 'conflict');
    const got = await a.getTransaction('tx-1');
    expect(got.status).toBe(200);
    expect(got.body).toEqual(first.body);
  });

  it('accepts a JSON number amount exactly and amountMinor instead of amount', async () => {
    const numeric = await a.request('POST', '/api/v1/transactions',
      '{"id":"tx-num","fromAccountId":"alice","toAccountId":"bob","amount":100.10,' +
      '"currencyCode":"USD"}');
    expect(numeric.status).toBe(201);
    expect(obj(numeric).amountMinor).toBe('10010');
    const minor = await a.transfer({
      id: 'tx-minor', fromAccountId: 'alice', toAccountId: 'bob', amountMinor: '7',
      currencyCode: 'USD',
    });
    expect(obj(minor)).toMatchObject({ amount: '0.07', amountMinor: '7' });
  });

  it('replays a rejected transfer with the same error', async () => {
    const first = await a.transfer(t('tx-poor', '999999.00'));
    expectError(first, 422, 'insufficient_funds');
    const again = await a.transfer(t('tx-poor', '999999.00'));
    expect(again.status).toBe(422);
    expect(again.body).toEqual(first.body);
  });

  it('uses the Idempotency-Key header as the id, and generates one when absent', async () => {
    const body = {
      fromAccountId: 'alice', toAccountId: 'bob', amount: '1.00', currencyCode: 'USD',
    };
    const keyed = await a.transfer(body, { idempotencyKey: 'idem-key-1' });
    expect(keyed.status).toBe(201);
    expect(obj(keyed).id).toBe('idem-key-1');
    const replay = await a.transfer(body, { idempotencyKey: 'idem-key-1' });
    expect(replay.status).toBe(200);
    const fresh1 = await a.transfer(body);
    const fresh2 = await a.transfer(body);
    expect(fresh1.status).toBe(201);
    expect(fresh2.status).toBe(201);
    expect(obj(fresh1).id).toMatch(/^[A-Za-z0-9._:-]{1,64}$/);
    expect(obj(fresh1).id).not.toBe(obj(fresh2).id);
  });

  it('answers every business and validation error with its code', async () => {
    expectError(await a.transfer(t('e1', '1.001')), 400, 'invalid_amount');
    expectError(await a.transfer(t('e2', '-1.00')), 400, 'invalid_amount');
    expectError(await a.transfer(t('e3', '0')), 400, 'invalid_amount');
    const huge = { ...t('e4', '1'), amount: undefined, amountMinor: '9223372036854775808' };
    expectError(await a.transfer(huge), 400, 'amount_overflow');
    expectError(await a.transfer({ ...t('e5', '1.00'), currencyCode: 'XYZ' }), 400,
      'invalid_currency');
    expectError(await a.transfer({ ...t('e6', '1.00'), id: 'x'.repeat(65) }), 400, 'invalid_id');
    expectError(await a.transfer({ ...t('e7', '1.00'), toAccountId: 'ghost' }), 404,
      'account_not_found');
    expectError(await a.transfer({ ...t('e8', '1.00'), toAccountId: 'euro' }), 422,
      'currency_mismatch');
    expectError(await a.transfer({ ...t('e9', '1.00'), toAccountId: 'alice' }), 422,
      'same_account');
    const typo = await a.request('POST', '/api/v1/transactions', {
      ...t('e10', '1'), pending: 'y',
    });
    expectError(typo, 400, 'invalid_request');
    expectError(await a.getTransaction('never-was'), 404, 'transaction_not_found');
  });

  it('refuses a transfer that would push a balance total past 2^63-1 (422)', async () => {
    await a.createAccount({ id: 'ovf-src', currencyCode: 'USD', allowNegative: true });
    await a.createAccount({ id: 'ovf-dst', currencyCode: 'USD' });
    const max = (2n ** 63n - 1n).toString();
    const leg = (id: string, amountMinor: string) => ({
      id, fromAccountId: 'ovf-src', toAccountId: 'ovf-dst', amountMinor, currencyCode: 'USD',
    });
    expect((await a.transfer(leg('ovf-1', max))).status).toBe(201);
    expectError(await a.transfer(leg('ovf-2', '1')), 422, 'balance_overflow');
    expect(obj(await a.getAccount('ovf-dst')).balanceMinor).toBe(max);
  });

  it('holds, partially posts and voids pending transfers', async () => {
    const before = await balances(a, ['alice', 'bob']);
    const hold = await a.transfer(t('p-1', '50.00', { pending: true }));
    expect(hold.status).toBe(201);
    expect(obj(hold).status).toBe('pending');
    expect(obj(await a.getAccount('alice')).pendingDebits).not.toBe('0');
    // API.md: post takes {"amount"?}; validate.ts needs the currency for a decimal amount
    const usd = { currencyCode: 'USD' };
    expectError(await a.post('p-1', { amount: '60.00', ...usd }), 422, 'amount_exceeds_pending');
    expectError(await a.post('p-1', { amountMinor: '6001' }), 422, 'amount_exceeds_pending');
    const posted = await a.post('p-1', { amount: '20.00', ...usd });
    expect(posted.status).toBe(200);
    expect(obj(posted)).toMatchObject({ status: 'posted', postedAmountMinor: '2000' });
    const again = await a.post('p-1');
    expect(again.status).toBe(200); // replaying a post is idempotent
    expect(obj(again).status).toBe('posted');
    expectError(await a.post('p-1', { amountMinor: '100' }), 422, 'transaction_not_pending');
    expectError(await a.void('p-1'), 422, 'transaction_not_pending');

    const hold2 = await a.transfer(t('p-2', '30.00', { pending: true }));
    expect(hold2.status).toBe(201);
    const voided = await a.void('p-2');
    expect(voided.status).toBe(200);
    expect(obj(voided).status).toBe('voided');
    expect(obj(await a.getTransaction('p-2')).status).toBe('voided');
    expectError(await a.post('nope-tx'), 404, 'transaction_not_found');
    expectError(await a.void('nope-tx'), 404, 'transaction_not_found');
    const after = await balances(a, ['alice', 'bob']);
    const moved = (id: string) => BigInt(String((after[id] as string[])[0])) -
      BigInt(String((before[id] as string[])[0]));
    expect(moved('bob')).toBe(2000n);
    expect(moved('alice')).toBe(-2000n);
    expect((after.alice as string[])[1]).toBe((before.alice as string[])[1]);
  });

  it('posts the whole pending amount when post has no body', async () => {
    await a.transfer(t('p-3', '5.00', { pending: true }));
    const posted = await a.request('POST', '/api/v1/transactions/p-3/post');
    expect(posted.status).toBe(200);
    expect(obj(posted)).toMatchObject({ status: 'posted', amountMinor: '500' });
  });

  it('voids a pending transfer past its timeout automatically', async () => {
    await a.transfer(t('p-timeout', '1.00', { pending: true, timeoutSeconds: 1 }));
    const voided = await eventually(
      async () => obj(await a.getTransaction('p-timeout')).status === 'voided', 10_000);
    expect(voided).toBe(true);
    expectError(await a.post('p-timeout'), 422, 'pending_expired');
  });
});

describe('batches', () => {
  const item = (id: string, amount: string, to = 'bob') => ({
    id, fromAccountId: 'alice', toAccountId: to, amount, currencyCode: 'USD',
  });

  it('applies an atomic batch all or nothing', async () => {
    const before = await balances(a, ['alice', 'bob']);
    const failed = await a.transferBatch({
      atomic: true,
      transactions: [item('b-1', '1.00'), item('b-2', '1.00', 'ghost'), item('b-3', '1.00')],
    });
    expect(failed.status).toBe(201);
    const results = obj(failed).results as Array<Record<string, { code: string }>>;
    expect(results.map((r) => r.error?.code)).toEqual([
      'batch_failed', 'account_not_found', 'batch_failed',
    ]);
    expect(await balances(a, ['alice', 'bob'])).toEqual(before);

    const ok = await a.transferBatch({
      atomic: true, transactions: [item('b-4', '1.00'), item('b-5', '2.00')],
    });
    expect(ok.status).toBe(201);
    const okResults = obj(ok).results as Array<Record<string, unknown>>;
    expect(okResults.map((r) => r.status)).toEqual(['posted', 'posted']);
  });

  it('applies a non-atomic batch item by item', async () => {
    const reply = await a.transferBatch({
      atomic: false, transactions: [item('b-6', '1.00'), item('b-7', '1.00', 'alice')],
    });
    const results = obj(reply).results as Array<Record<string, unknown>>;
    expect(results[0]?.status).toBe('posted');
    expect(results[1]).toMatchObject({ error: { code: 'same_account' } });
  });

  it('names items without id after the Idempotency-Key, so a retried batch replays', async () => {
    const body = { atomic: true, transactions: [item('x', '1.00'), item('y', '2.00')] };
    for (const t of body.transactions) delete (t as { id?: string }).id;
    const send = () => a.request('POST', '/api/v1/transactions/batch', body, {
      idempotencyKey: 'batch-key',
    });
    const first = obj(await send()).results as Array<Record<string, unknown>>;
    expect(first.map((r) => [r.id, r.status])).toEqual([
      ['batch-key.0', 'posted'], ['batch-key.1', 'posted'],
    ]);
    const before = await balances(a, ['alice', 'bob']);
    const again = obj(await send()).results;
    expect(again).toEqual(first);
    expect(await balances(a, ['alice', 'bob'])).toEqual(before);
  });

  it('refuses an empty batch (400) and one over 8190 items (413)', async () => {
    expectError(await a.transferBatch({ atomic: true, transactions: [] }), 400, 'invalid_request');
    const many = Array.from({ length: 8191 }, (_, i) => item(`big-${i}`, '0.01'));
    const tooMany = await a.transferBatch({ atomic: true, transactions: many });
    expectError(tooMany, 413, 'batch_too_large');
  });
});

describe('entries', () => {
  it('pages through an account, oldest first', async () => {
    await a.createAccount({ id: 'paged', currencyCode: 'USD' });
    for (let i = 0; i < 5; i++) {
      const r = await a.transfer({
        id: `pg-${i}`, fromAccountId: 'bank', toAccountId: 'paged', amount: '1.00',
        currencyCode: 'USD',
      });
      expect(r.status).toBe(201);
    }
    const seen: unknown[] = [];
    let after: string | undefined;
    for (let page = 0; page < 10; page++) {
      const reply = await a.listEntries('paged', { limit: 2, ...(after ? { after } : {}) });
      expect(reply.status).toBe(200);
      const body = obj(reply) as { entries: Array<{ sequence: number }>; next: string | null };
      expect(body.entries.length).toBeLessThanOrEqual(2);
      seen.push(...body.entries);
      if (body.next === null) break;
      after = body.next;
    }
    const seqs = (seen as Array<{ sequence: number }>).map((e) => e.sequence);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(seen).toHaveLength(6); // account-open + 5 credits
  });

  it('refuses a bad cursor and a bad limit', async () => {
    expectError(await a.listEntries('alice', { after: 'zz' }), 400, 'invalid_cursor');
    expectError(await a.listEntries('alice', { limit: 0 }), 400, 'invalid_request');
    expectError(await a.listEntries('alice', { limit: 100_000 }), 400, 'invalid_request');
    expectError(await a.listEntries('ghost'), 404, 'account_not_found');
  });
});

describe('tenant isolation', () => {
  it('answers another tenant\'s objects exactly like missing ones', async () => {
    const hold = await a.transfer({
      id: 'iso-hold', fromAccountId: 'alice', toAccountId: 'bob', amount: '1.00',
      currencyCode: 'USD', pending: true,
    });
    expect(hold.status).toBe(201);
    const missingAccount = await b.getAccount('no-such-account');
    expect(missingAccount.status).toBe(404);
    const strip = (r: { status: number; body: unknown }) => r.body;
    expect(strip(await b.getAccount('alice'))).toEqual(strip(missingAccount));
    expect(strip(await b.listEntries('alice'))).toEqual(strip(missingAccount));
    const missingTx = await b.getTransaction('no-such-tx');
    expectError(missingTx, 404, 'transaction_not_found');
    expect(strip(await b.getTransaction('iso-hold'))).toEqual(strip(missingTx));
    expect(strip(await b.post('iso-hold'))).toEqual(strip(missingTx));
    expect(strip(await b.void('iso-hold'))).toEqual(strip(missingTx));
    const steal = await b.transfer({
      id: 'steal', fromAccountId: 'alice', toAccountId: 'bob', amount: '1.00', currencyCode: 'USD',
    });
    expectError(steal, 404, 'account_not_found');
    expect(obj(await a.getTransaction('iso-hold')).status).toBe('pending');
  });

  it('keeps ids per tenant: B may create an account id A already has', async () => {
    const mine = await b.createAccount({ id: 'alice', currencyCode: 'EUR' });
    expect(mine.status).toBe(201);
    expect(obj(await a.getAccount('alice')).currencyCode).toBe('USD');
  });
});

describe('routing', () => {
  it('answers 404 route_not_found and 405 method_not_allowed', async () => {
    expectError(await a.request('GET', '/api/v1/nothing'), 404, 'route_not_found');
    expectError(await a.request('GET', '/'), 404, 'route_not_found');
    const del = await a.request('DELETE', '/api/v1/accounts/alice');
    expectError(del, 405, 'method_not_allowed');
    expectError(await a.request('PUT', '/api/v1/transactions'), 405, 'method_not_allowed');
    expectError(await a.request('POST', '/metrics'), 405, 'method_not_allowed');
  });

  it('sends Content-Type application/json on every JSON reply', async () => {
    for (const route of ['/api/v1/accounts/alice', '/api/v1/nothing', '/health/live']) {
      const res = await fetch(pod.url + route, { headers: { authorization: `Bearer ${a.token}` } });
      expect(res.headers.get('content-type')).toBe('application/json');
    }
  });
});

describe('operations', () => {
  it('reports live and ready', async () => {
    const live = await fetch(`${pod.url}/health/live`);
    expect(live.status).toBe(200);
    const ready = await fetch(`${pod.url}/health/ready`);
    expect(ready.status).toBe(200);
  });

  it('exposes the metrics by name', async () => {
    const res = await fetch(`${pod.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const name of [
      'payments_processed_total', 'payment_errors_total', 'payment_response_time_seconds',
      'ledger_shard_queue_depth', 'ledger_group_commit_rows', 'ledger_group_commit_seconds',
      'ledger_journal_lag', 'ws_connections', 'process_cpu_user_seconds_total',
    ]) {
      expect(text, name).toContain(name);
    }
    expect(text).toMatch(/payments_processed_total\{route="http:transfer",outcome="ok"\} [1-9]/);
    expect(text).toMatch(/payment_errors_total\{code="insufficient_funds"\} [1-9]/);
    expect(text).toMatch(/ledger_group_commit_rows_count [1-9]/);
  });
});

describe('admin API', () => {
  const admin = () => new LedgerHttpClient(pod.url, ADMIN_TOKEN);

  it('creates a tenant whose token works at once', async () => {
    const reply = await admin().request('POST', '/admin/v1/tenants', { id: 'tenant-c' });
    expect(reply.status).toBe(201);
    const { id, token } = obj(reply) as { id: string; token: string };
    expect(id).toBe('tenant-c');
    const c = new LedgerHttpClient(pod.url, token);
    expect((await c.createAccount({ id: 'c1', currencyCode: 'GBP' })).status).toBe(201);
    expectError(await admin().request('POST', '/admin/v1/tenants', { id: 'tenant-c' }), 409,
      'tenant_exists');
    expectError(await admin().request('POST', '/admin/v1/tenants', { id: 'bad id' }), 400,
      'invalid_id');
    expectError(await admin().request('POST', '/admin/v1/tenants', '{'), 400, 'invalid_json');
    expectError(await admin().request('POST', '/admin/v1/tenants', {}), 400, 'invalid_request');
  });

  it('refuses a wrong admin token (401) and a tenant token', async () => {
    const wrong = new LedgerHttpClient(pod.url, 'x'.repeat(28));
    expectError(await wrong.request('GET', '/admin/v1/shards'), 401, 'unauthorized');
    expectError(await a.request('GET', '/admin/v1/shards'), 401, 'unauthorized');
  });

  it('lists every shard with owner, epoch, last sequence and state', async () => {
    const reply = await admin().request('GET', '/admin/v1/shards');
    expect(reply.status).toBe(200);
    const shards = obj(reply).shards as Array<Record<string, unknown>>;
    expect(shards.map((s) => s.shard)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    for (const s of shards) {
      expect(s).toMatchObject({
        owner: 'pod-test', epoch: expect.any(Number), lastSequence: expect.any(Number),
        state: 'active',
      });
    }
    expect(shards.some((s) => Number(s.lastSequence) > 0)).toBe(true);
  });

  it('answers shard moves on a standalone pod', async () => {
    const self = await admin().request('POST', '/admin/v1/shards/3/move', { to: 'pod-test' });
    expect(self.status).toBe(202);
    const away = await admin().request('POST', '/admin/v1/shards/3/move', { to: 'pod-other' });
    const err = expectError(away, 404, 'pod_not_found');
    expect(err.message).toContain('pod-other');
    expectError(await admin().request('POST', '/admin/v1/shards/99/move', { to: 'pod-test' }),
      400, 'invalid_request');
    expectError(await admin().request('POST', '/admin/v1/shards/1/move', {}), 400,
      'invalid_request');
  });

  it('hides the admin API (404) when no admin token is configured', async () => {
    const bare = await startPod({ adminToken: null });
    try {
      const client = new LedgerHttpClient(bare.url, ADMIN_TOKEN);
      expectError(await client.request('GET', '/admin/v1/shards'), 404, 'route_not_found');
      expectError(await client.request('POST', '/admin/v1/tenants', { id: 'z' }), 404,
        'route_not_found');
    } finally {
      await bare.stop();
    }
  });
});
