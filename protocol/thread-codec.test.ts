// Tests for thread-codec.ts: round trips (bigint intact), transferable bytes, and a
// printed (never asserted) speed figure. Starts one short-lived worker thread.

import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorRecord } from './errors.js';
import { MAX_MINOR } from './money.js';
import {
  decodeEnvelopes,
  decodeOutcomes,
  encodeEnvelopes,
  encodeOutcomes,
} from './thread-codec.js';
import type { AccountView, Envelope, Outcome, TransferCmd } from './types.js';

function transfer(i: number, amountMinor: bigint): TransferCmd {
  return {
    op: 'transfer', id: `tx-${i}`, fromAccountId: `a-${i % 10}`, toAccountId: `b-${i % 7}`,
    amountMinor, currencyCode: 'USD', description: i % 2 ? 'rent' : null, paymentTypeId: null,
    pending: i % 3 === 0, timeoutSeconds: i % 3 === 0 ? 60 : null,
  };
}

describe('envelopes', () => {
  it('round-trip every command shape, bigint staying bigint', () => {
    const items: Envelope[] = [
      { tenant: 't1', cmd: transfer(1, 100n) },
      { tenant: 't1', cmd: transfer(2, MAX_MINOR) },
      { tenant: 't2', cmd: { op: 'createAccount', id: 'a', currencyCode: 'EUR',
        allowNegative: true, metadata: '{"k":"v"}' } },
      { tenant: 't2', cmd: { op: 'post', id: 'tx-1', amountMinor: null } },
      { tenant: 't2', cmd: { op: 'post', id: 'tx-1', amountMinor: 1n } },
      { tenant: 't2', cmd: { op: 'void', id: 'tx-1' } },
      { tenant: 't3', cmd: { op: 'transferBatch', atomic: true,
        transactions: [transfer(3, 5n), transfer(4, 6n)] } },
      { tenant: 't3', cmd: { op: 'getAccount', id: 'a' } },
      { tenant: 't3', cmd: { op: 'getTransaction', id: 'x' } },
      { tenant: 'ü-€-😀', cmd: { op: 'listEntries', accountId: 'a', limit: 10, after: null } },
    ];
    expect(decodeEnvelopes(encodeEnvelopes(items))).toEqual(items);
    expect(decodeEnvelopes(encodeEnvelopes([]))).toEqual([]);
  });

  it('keeps bigint as bigint for 0, negatives and the int64 edges', () => {
    for (const amountMinor of [0n, 1n, -1n, -(2n ** 63n), MAX_MINOR, 2n ** 32n, 255n]) {
      const bytes = encodeEnvelopes([{ tenant: 't', cmd: transfer(0, amountMinor) }]);
      const [back] = decodeEnvelopes(bytes);
      expect(back?.cmd).toMatchObject({ amountMinor });
      expect(typeof (back?.cmd as TransferCmd).amountMinor).toBe('bigint');
    }
  });

  it('round-trips random transfers (property)', () => {
    const env = fc.record({
      tenant: fc.string({ minLength: 1, maxLength: 20 }),
      i: fc.nat(),
      amount: fc.bigInt({ min: 1n, max: MAX_MINOR }),
    }).map(({ tenant, i, amount }): Envelope => ({ tenant, cmd: transfer(i, amount) }));
    fc.assert(fc.property(fc.array(env, { maxLength: 50 }), (items) => {
      expect(decodeEnvelopes(encodeEnvelopes(items))).toEqual(items);
    }), { numRuns: 300 });
  });

  it('returns bytes that own their ArrayBuffer, so they can be transferred', () => {
    const a = encodeEnvelopes([{ tenant: 't', cmd: transfer(1, 1n) }]);
    const b = encodeEnvelopes([{ tenant: 't', cmd: transfer(2, 2n) }]);
    expect(a.byteOffset).toBe(0);
    expect(a.buffer.byteLength).toBe(a.byteLength);
    expect(a.buffer).not.toBe(b.buffer);
    structuredClone(a, { transfer: [a.buffer] }); // detaches a's buffer only
    expect(decodeEnvelopes(encodeEnvelopes([{ tenant: 't', cmd: transfer(3, 3n) }])))
      .toHaveLength(1);
  });

  it('decodes bytes produced on another thread (fresh decoder state)', async () => {
    const { Worker } = await import('node:worker_threads');
    const msgpackrPath = createRequire(import.meta.url).resolve('msgpackr');
    const source = `
      const { parentPort, workerData } = require('node:worker_threads');
      const { Unpackr } = require(${JSON.stringify(msgpackrPath)});
      const value = new Unpackr({ useRecords: true }).unpack(workerData);
      parentPort.postMessage(typeof value[0].cmd.amountMinor + ':' + value[0].cmd.amountMinor);`;
    const bytes = encodeEnvelopes([{ tenant: 't', cmd: transfer(1, MAX_MINOR) }]);
    const worker = new Worker(source, { eval: true, workerData: bytes });
    const reply = await new Promise((resolve) => worker.once('message', resolve));
    await worker.terminate();
    expect(reply).toBe(`bigint:${MAX_MINOR}`);
  });

  it('throws on bytes that are not a batch (a bug, not input)', () => {
    expect(() => decodeEnvelopes(encodeOutcomes([]).subarray(0, 0))).toThrow();
    expect(() => decodeOutcomes(Uint8Array.from([0xa1, 0x78]))).toThrow(TypeError);
  });
});

describe('outcomes', () => {
  const account: AccountView = {
    id: 'a', currencyCode: 'USD', allowNegative: true, metadata: '{}',
    balanceMinor: -MAX_MINOR, postedDebits: MAX_MINOR, postedCredits: 0n, pendingDebits: 0n,
    pendingCredits: 0n, createdAt: 1_714_564_800_123,
  };

  it('round-trip values, errors and nested batch results', () => {
    const outcomes: Outcome[] = [
      { ok: true, created: true, value: account },
      { ok: false, error: errorRecord('insufficient_funds') },
      { ok: true, created: false, value: { entries: [{ sequence: 1, transactionId: 't',
        kind: 'post', direction: 'credit', amountMinor: 5n, createdAt: 1 }], next: null } },
      { ok: true, created: true, value: { results: [
        { ok: false, error: errorRecord('batch_failed') },
        { ok: true, created: true, value: { id: 't', status: 'pending', fromAccountId: 'a',
          toAccountId: 'b', amountMinor: 9n, postedAmountMinor: 0n, currencyCode: 'USD',
          description: null, paymentTypeId: 'p', createdAt: 2, sequence: 3, expiresAt: 99 } },
      ] } },
    ];
    expect(decodeOutcomes(encodeOutcomes(outcomes))).toEqual(outcomes);
  });
});

describe('speed (printed, never asserted)', () => {
  it('encodes and decodes a batch of 8190 transfer envelopes', () => {
    const items: Envelope[] = Array.from({ length: 8190 },
      (_, i) => ({ tenant: `tenant-${i % 7}`, cmd: transfer(i, BigInt(1000 + i)) }));
    let bytes = encodeEnvelopes(items);
    for (let w = 0; w < 10; w++) decodeEnvelopes(encodeEnvelopes(items));
    const runs: number[] = [];
    for (let r = 0; r < 9; r++) {
      const t0 = process.hrtime.bigint();
      bytes = encodeEnvelopes(items);
      decodeEnvelopes(bytes);
      runs.push(Number(process.hrtime.bigint() - t0) / 1000 / items.length);
    }
    runs.sort((a, b) => a - b);
    console.log(`thread-codec: 8190 envelopes, ${bytes.length} bytes, ` +
      `median ${runs[4]?.toFixed(3)} us/item encode+decode`);
    expect(decodeEnvelopes(bytes)).toHaveLength(8190);
  });
});
