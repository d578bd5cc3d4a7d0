// Tests for envelope-codec.ts: every command shape round-trips (bigint intact, unicode, nulls),
// bytes own their buffer, and malformed or truncated bytes throw instead of decoding into
// something else. Prints (never asserts) a speed figure.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeEnvelopes, encodeEnvelopes } from './envelope-codec.js';
import { MAX_MINOR } from './money.js';
import type { Envelope, TransferCmd } from './types.js';

function transfer(i: number, amountMinor: bigint): TransferCmd {
  return {
    op: 'transfer', id: `tx-${i}`, fromAccountId: `a-${i % 10}`, toAccountId: `b-${i % 7}`,
    amountMinor, currencyCode: 'USD', description: i % 2 ? 'rent' : null, paymentTypeId: null,
    pending: i % 3 === 0, timeoutSeconds: i % 3 === 0 ? 60 : null,
  };
}

const transferArb = fc.record({
  op: fc.constant('transfer' as const),
  id: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }),
  fromAccountId: fc.constantFrom('a', 'b', 'ü-€', 'c'.repeat(64)),
  toAccountId: fc.constantFrom('a', 'b', '😀'),
  amountMinor: fc.bigInt({ min: -(2n ** 63n), max: MAX_MINOR }),
  currencyCode: fc.constantFrom('USD', 'EUR', 'JPY'),
  description: fc.option(fc.string({ maxLength: 30, unit: 'grapheme' })),
  paymentTypeId: fc.option(fc.constantFrom('card', 'sepa', '')),
  pending: fc.boolean(),
  timeoutSeconds: fc.option(fc.integer({ min: 0, max: 2 ** 40 })),
});

const envelopeArb: fc.Arbitrary<Envelope> = fc.oneof(
  fc.record({ tenant: fc.string({ minLength: 1, maxLength: 20 }), cmd: transferArb }),
  fc.record({ tenant: fc.constantFrom('t1', 't2'), cmd: fc.record({
    op: fc.constant('transferBatch' as const), atomic: fc.boolean(),
    transactions: fc.array(transferArb, { maxLength: 8 }) }) }),
  fc.record({ tenant: fc.constant('t1'), cmd: fc.record({ op: fc.constant('void' as const),
    id: fc.string() }) }),
);

describe('envelopes', () => {
  it('round-trip every command shape, bigint staying bigint', () => {
    const items: Envelope[] = [
      { tenant: 't1', cmd: transfer(1, 100n) },
      { tenant: 't1', cmd: transfer(2, MAX_MINOR) },
      { tenant: 't2', cmd: { op: 'createAccount', id: 'a', currencyCode: 'EUR',
        allowNegative: true, metadata: '{"k":"v"}' } },
      { tenant: 't2', cmd: { op: 'post', id: 'tx-1', amountMinor: null } },
      { tenant: 't2', cmd: { op: 'post', id: 'tx-1', amountMinor: 1n, amountDecimal: '1.0',
        currencyCode: 'USD' } },
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
      const [back] = decodeEnvelopes(encodeEnvelopes([{ tenant: 't', cmd: transfer(0,
        amountMinor) }]));
      expect(back?.cmd).toMatchObject({ amountMinor });
      expect(typeof (back?.cmd as TransferCmd).amountMinor).toBe('bigint');
    }
  });

  it('round-trips random batches of commands (property)', () => {
    fc.assert(fc.property(fc.array(envelopeArb, { maxLength: 20 }), (items) => {
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
    expect(decodeEnvelopes(b)).toHaveLength(1);
  });

  it('throws on every truncation and on bytes that are not a batch', () => {
    const bytes = encodeEnvelopes([{ tenant: 't', cmd: transfer(1, 1n) },
      { tenant: 't', cmd: { op: 'transferBatch', atomic: false,
        transactions: [transfer(2, 2n)] } }, { tenant: 'u', cmd: { op: 'void', id: 'x' } }]);
    for (let n = 0; n < bytes.length; n++) {
      expect(() => decodeEnvelopes(bytes.subarray(0, n)), `cut at ${n}`).toThrow();
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(() => decodeEnvelopes(longer)).toThrow(RangeError);
    expect(() => decodeEnvelopes(Uint8Array.from([0xa1, 0x78]))).toThrow(RangeError);
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
    console.log(`envelope-codec: 8190 envelopes, ${bytes.length} bytes, ` +
      `median ${runs[4]?.toFixed(3)} us/item encode+decode`);
    expect(decodeEnvelopes(bytes)).toHaveLength(8190);
  });
});
