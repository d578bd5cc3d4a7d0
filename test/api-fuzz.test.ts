// Fuzzes a real pod with malformed HTTP bodies and WebSocket frames (fast-check): the pod never
// crashes, every answer is a 4xx / ok:false with a catalogue code, and no balance moves.

import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isErrorCode } from '../protocol/errors.js';
import { LedgerWsClient } from '../protocol/client.js';
import { balances, eventually, startPod, type Pod } from './api-support.js';

type Client = Awaited<ReturnType<Pod['tenant']>>;

const ACCOUNTS = ['fz-funding-source', 'fz-held-balance'];
const SEED = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);

let pod: Pod;
let a: Client;
let before: Record<string, unknown>;

beforeAll(async () => {
  pod = await startPod();
  a = await pod.tenant('fuzz');
  await a.createAccount({ id: ACCOUNTS[0] ?? '', currencyCode: 'USD', allowNegative: true });
  await a.createAccount({ id: ACCOUNTS[1] ?? '', currencyCode: 'USD' });
  const fund = await a.transfer({
    id: 'fz-fund', fromAccountId: ACCOUNTS[0] ?? '', toAccountId: ACCOUNTS[1] ?? '',
    amount: '100.00', currencyCode: 'USD',
  });
  expect(fund.status).toBe(201);
  before = await balances(a, ACCOUNTS);
});

afterAll(async () => {
  await pod.stop();
});

/** A valid-looking transfer between accounts that do not exist: mutations stay harmless. */
const BASE_TRANSFER = JSON.stringify({
  id: 'fz-base', fromAccountId: 'ghost-one', toAccountId: 'ghost-two', amount: '1.50',
  currencyCode: 'USD', description: 'x', pending: false,
});

function mutate(text: string, edits: Array<[number, number]>): Uint8Array {
  const bytes = new TextEncoder().encode(text);
  for (const [at, value] of edits) bytes[at % bytes.length] = value;
  return bytes;
}

const bodyArb: fc.Arbitrary<Uint8Array | string> = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 300 }),
  fc.nat({ max: BASE_TRANSFER.length - 1 }).map((n) => BASE_TRANSFER.slice(0, n)),
  fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
    .map((edits) => mutate(BASE_TRANSFER, edits)),
  fc.json({ maxDepth: 3 }).filter((j) => !j.includes('fz-')),
);

const routeArb = fc.constantFrom(
  '/api/v1/accounts',
  '/api/v1/transactions',
  '/api/v1/transactions/batch',
  '/api/v1/transactions/ghost-tx/post',
  '/api/v1/transactions/ghost-tx/void',
);

describe('HTTP fuzz', () => {
  it('answers malformed bodies with a 4xx error code and changes nothing', async () => {
    await fc.assert(
      fc.asyncProperty(routeArb, bodyArb, async (route, body) => {
        const res = await fetch(pod.url + route, {
          method: 'POST',
          headers: { authorization: `Bearer ${a.token}`, 'content-type': 'application/json' },
          body,
        });
        const text = await res.text();
        expect(res.status, text).toBeGreaterThanOrEqual(400);
        expect(res.status, text).toBeLessThan(500);
        const parsed = JSON.parse(text) as { error?: { code?: unknown } };
        expect(isErrorCode(parsed.error?.code), text).toBe(true);
      }),
      { numRuns: 300, seed: SEED },
    );
    expect(await balances(a, ACCOUNTS)).toEqual(before);
    expect((await fetch(`${pod.url}/health/ready`)).status).toBe(200);
  });
});

describe('WebSocket fuzz', () => {
  const packr = new Packr({ useRecords: false });
  const baseFrame = packr.pack({ op: 'transfer', rid: 1, ...JSON.parse(BASE_TRANSFER) });

  const frameArb: fc.Arbitrary<Uint8Array> = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.nat({ max: baseFrame.length - 1 }).map((n) => baseFrame.subarray(0, n)),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 })
      .map((edits) => {
        const bytes = Uint8Array.from(baseFrame);
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        return bytes;
      }),
    fc.anything({ maxDepth: 2 }).map((v) => packr.pack(v)),
  );

  it('answers malformed frames with ok:false and a catalogue code, one reply each', async () => {
    const sock = await LedgerWsClient.connect(pod.url, a.token);
    await fc.assert(
      fc.asyncProperty(fc.array(frameArb, { minLength: 1, maxLength: 20 }), async (frames) => {
        sock.unpaired.splice(0);
        for (const f of frames) sock.sendRaw(f);
        const all = await eventually(async () => sock.unpaired.length >= frames.length, 10_000, 2);
        expect(all).toBe(true);
        expect(sock.unpaired).toHaveLength(frames.length);
        for (const reply of sock.unpaired) {
          expect(reply.ok).toBe(false);
          if (!reply.ok) expect(isErrorCode(reply.error.code)).toBe(true);
        }
      }),
      { numRuns: 100, seed: SEED },
    );
    const alive = await sock.request('getAccount', { id: ACCOUNTS[1] });
    expect(alive.ok).toBe(true);
    await sock.close();
    expect(await balances(a, ACCOUNTS)).toEqual(before);
  });
});
