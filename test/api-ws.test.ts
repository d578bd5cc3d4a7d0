// The WebSocket API of a real pod through the SDK: auth on upgrade, every op, many requests in
// flight paired by rid, bad frames, per-socket overload, sockets closing mid-flight.

import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LedgerWsClient, type WsReply } from '../protocol/client.js';
import { eventually, expectError, startPod, type Pod } from './api-support.js';

type Client = Awaited<ReturnType<Pod['tenant']>>;

let pod: Pod;
let a: Client;
let b: Client;
let ws: LedgerWsClient;

beforeAll(async () => {
  pod = await startPod();
  a = await pod.tenant('ws-a');
  b = await pod.tenant('ws-b');
  ws = await LedgerWsClient.connect(pod.url, a.token);
});

afterAll(async () => {
  await ws.close();
  await pod.stop();
});

function result(reply: WsReply): Record<string, unknown> {
  if (!reply.ok) throw new Error(`expected ok, got ${reply.error.code}: ${reply.error.message}`);
  return reply.result;
}

function errorCode(reply: WsReply): string | null {
  return reply.ok ? null : reply.error.code;
}

describe('upgrade', () => {
  it('accepts the token from the Authorization header or ?token=', async () => {
    const viaQuery = await LedgerWsClient.connect(pod.url, a.token, { tokenIn: 'query' });
    const reply = await viaQuery.request('getAccount', { id: 'none' });
    expect(errorCode(reply)).toBe('account_not_found');
    await viaQuery.close();
  });

  it('refuses the upgrade with 401 for a missing or unknown token', async () => {
    const refused = { status: 401 };
    await expect(LedgerWsClient.connect(pod.url, 'sl_bogus')).rejects.toMatchObject(refused);
    const noToken = LedgerWsClient.connect(pod.url, '', { tokenIn: 'query' });
    await expect(noToken).rejects.toMatchObject(refused);
  });

  it('answers a plain GET on the WebSocket path with 400', async () => {
    expectError(await a.request('GET', '/api/v1/ws'), 400, 'invalid_request');
  });
});

/** A USD transfer between two accounts, amount in minor units. */
function usd(id: string, from: string, to: string, amountMinor: string | number) {
  return { id, fromAccountId: from, toAccountId: to, amountMinor, currencyCode: 'USD' };
}

describe('ops', () => {
  it('serves every op', async () => {
    const bank = { id: 'w-bank', currencyCode: 'USD', allowNegative: true };
    result(await ws.request('createAccount', bank));
    const acc = result(await ws.request('createAccount', { id: 'w-alice', currencyCode: 'USD' }));
    expect(acc).toMatchObject({ id: 'w-alice', balanceMinor: '0' });
    const t = result(await ws.request('transfer', {
      id: 'w-t1', fromAccountId: 'w-bank', toAccountId: 'w-alice', amount: '12.34',
      currencyCode: 'USD',
    }));
    expect(t).toMatchObject({ status: 'posted', amountMinor: '1234' });
    expect(result(await ws.request('getAccount', { id: 'w-alice' })).balanceMinor).toBe('1234');
    expect(result(await ws.request('getTransaction', { id: 'w-t1' })).id).toBe('w-t1');
    const batch = result(await ws.request('transferBatch', {
      atomic: true,
      transactions: [
        usd('w-b1', 'w-bank', 'w-alice', 1),
        usd('w-b2', 'w-bank', 'w-alice', 2),
      ],
    }));
    expect((batch.results as unknown[]).length).toBe(2);
    const hold = (id: string) => ({ ...usd(id, 'w-alice', 'w-bank', '100'), pending: true });
    expect(result(await ws.request('transfer', hold('w-p1'))).status).toBe('pending');
    const posted = result(await ws.request('post', { id: 'w-p1', amountMinor: '40' }));
    expect(posted.status).toBe('posted');
    result(await ws.request('transfer', hold('w-p2')));
    expect(result(await ws.request('void', { id: 'w-p2' })).status).toBe('voided');
  });

  it('replays by id and answers business errors as ok:false', async () => {
    const body = usd('w-r1', 'w-bank', 'w-alice', '5');
    const first = result(await ws.request('transfer', body));
    expect(result(await ws.request('transfer', body))).toEqual(first);
    expect(errorCode(await ws.request('transfer', { ...body, amountMinor: '6' }))).toBe('conflict');
    const denied = await ws.request('transfer', usd('w-r2', 'w-alice', 'w-bank', '99999999'));
    const error = { code: 'insufficient_funds', retryable: false };
    expect(denied).toMatchObject({ ok: false, error });
    expect(errorCode(await ws.request('transfer', { ...body, id: 'bad id' }))).toBe('invalid_id');
    expect(errorCode(await ws.request('listEntries', { accountId: 'w-alice' }))).toBe('unknown_op');
  });

  it('keeps tenants apart', async () => {
    const other = await LedgerWsClient.connect(pod.url, b.token);
    const code = async (op: string, id: string) => errorCode(await other.request(op, { id }));
    expect(await code('getAccount', 'w-alice')).toBe('account_not_found');
    expect(await code('getTransaction', 'w-t1')).toBe('transaction_not_found');
    expect(await code('void', 'w-p1')).toBe('transaction_not_found');
    expect(await code('post', 'w-p1')).toBe('transaction_not_found');
    await other.close();
  });
});

describe('in flight', () => {
  it('pairs hundreds of concurrent requests by rid', async () => {
    result(await ws.request('createAccount', { id: 'w-many', currencyCode: 'USD' }));
    const n = 500;
    const replies = await Promise.all(Array.from({ length: n }, (_, i) =>
      ws.request('transfer', usd(`w-many-${i}`, 'w-bank', 'w-many', '1'))));
    replies.forEach((r, i) => expect(result(r).id).toBe(`w-many-${i}`));
    expect(result(await ws.request('getAccount', { id: 'w-many' })).balanceMinor).toBe(String(n));
  });

  it('answers overloaded past the per-socket in-flight bound, and every frame', async () => {
    const burst = await LedgerWsClient.connect(pod.url, a.token);
    const replies = await Promise.all(Array.from({ length: 4000 }, () =>
      burst.request('getAccount', { id: 'w-alice' })));
    const codes = new Set(replies.map(errorCode));
    expect([...codes].every((c) => c === null || c === 'overloaded')).toBe(true);
    expect(codes.has('overloaded')).toBe(true);
    expect(codes.has(null)).toBe(true);
    await burst.close();
  });

  it('survives a client closing with requests in flight', async () => {
    const quitter = await LedgerWsClient.connect(pod.url, a.token);
    const pending = Array.from({ length: 200 }, (_, i) => quitter.request('transfer', {
      id: `w-quit-${i}`, fromAccountId: 'w-bank', toAccountId: 'w-alice', amountMinor: '1',
      currencyCode: 'USD',
    }).catch((err: unknown) => err));
    await quitter.close();
    await Promise.all(pending);
    expect((await fetch(`${pod.url}/health/live`)).status).toBe(200);
    expect(result(await ws.request('getAccount', { id: 'w-alice' })).id).toBe('w-alice');
  });
});

describe('slow readers', () => {
  /** A non-atomic batch of failing items: a large reply (~0.5 MB) that changes nothing. */
  const bigBatch = (tag: string) => ({
    atomic: false,
    transactions: Array.from({ length: 8000 }, (_, i) =>
      usd(`${tag}-${i}`, 'ghost-a', 'ghost-b', '1')),
  });
  const idle = async (p: Pod): Promise<void> => {
    await eventually(async () => (p.server.ledger.queueDepth?.() ?? 0) === 0, 30_000, 5);
  };

  it('parks frames while backpressured, answers overloaded past the bound, then all', async () => {
    const limits = { softBufferBytes: 64 * 1024, parkedBytesMax: 2 * 1024 * 1024 };
    const small = await startPod({}, false, { wsLimits: limits });
    try {
      const c = await small.tenant('slow');
      const sock = await LedgerWsClient.connect(small.url, c.token);
      sock.pauseReading();
      // phase 1: replies (~6 MB) fill the kernel buffers and then the socket's own
      const first = Array.from({ length: 12 }, (_, n) =>
        sock.request('transferBatch', bigBatch(`one${n}`)).then(errorCode));
      await new Promise((r) => setTimeout(r, 200));
      await idle(small);
      // phase 2: frames now arrive at a backpressured socket
      const second = Array.from({ length: 10 }, (_, n) =>
        sock.request('transferBatch', bigBatch(`two${n}`)).then(errorCode));
      const reads = Array.from({ length: 50 }, () =>
        sock.request('getAccount', { id: 'ghost-a' }).then(errorCode));
      await new Promise((r) => setTimeout(r, 300));
      sock.resumeReading();
      expect(new Set(await Promise.all(first))).toEqual(new Set([null]));
      const later = await Promise.all(second);
      expect(later).toContain('overloaded');
      expect(later).toContain(null);
      expect(new Set(await Promise.all(reads))).toEqual(new Set(['account_not_found']));
      await sock.close();
    } finally {
      await small.stop();
    }
  });

  it('closes a socket whose unsent replies pass the backpressure limit', async () => {
    const limits = { softBufferBytes: 64 * 1024, maxBackpressureBytes: 256 * 1024 };
    const small = await startPod({}, false, { wsLimits: limits });
    try {
      const c = await small.tenant('slow');
      const sock = await LedgerWsClient.connect(small.url, c.token);
      sock.pauseReading();
      // all accepted at once (nothing is backpressured yet); their replies then pile up
      const replies = Array.from({ length: 20 }, (_, n) =>
        sock.request('transferBatch', bigBatch(`drop${n}`)).then(errorCode, () => 'closed'));
      await new Promise((r) => setTimeout(r, 200));
      await idle(small);
      sock.resumeReading();
      expect(await Promise.all(replies)).toContain('closed');
      const fresh = await LedgerWsClient.connect(small.url, c.token);
      expect(errorCode(await fresh.request('getAccount', { id: 'x' }))).toBe('account_not_found');
      await fresh.close();
    } finally {
      await small.stop();
    }
  });
});

describe('bad frames', () => {
  it('answers invalid_frame or unknown_op and keeps the socket open', async () => {
    const sock = await LedgerWsClient.connect(pod.url, a.token);
    const packr = new Packr({ useRecords: false });
    sock.sendRaw(new Uint8Array([0xc1, 0xff, 0x00]));
    sock.sendRaw(packr.pack([1, 2, 3]));
    sock.sendRaw(packr.pack({ op: 'getAccount' }));
    sock.sendRaw(packr.pack({ op: 'dance', rid: 'r-1' }));
    sock.sendRaw(packr.pack({ op: 7, rid: 'r-2' }));
    sock.sendRaw('{"op":"getAccount"}', false);
    const ok = await sock.request('getAccount', { id: 'w-alice' });
    expect(result(ok).id).toBe('w-alice');
    const seen = sock.unpaired.map((r) => [r.rid, errorCode(r)]);
    expect(seen).toEqual([
      [null, 'invalid_frame'],
      [null, 'invalid_frame'],
      [null, 'invalid_frame'],
      ['r-1', 'unknown_op'],
      ['r-2', 'invalid_frame'],
      [null, 'invalid_frame'],
    ]);
    await sock.close();
  });

  it('counts sockets in ws_connections', async () => {
    const text = await (await fetch(`${pod.url}/metrics`)).text();
    expect(text).toMatch(/^ws_connections [1-9]/m);
  });
});
