// Tests for batch-frame.ts: the bytes decode to exactly what msgpack of frames.replyValue
// decodes to (same keys in the same order), for any mix of transfers and errors; any other
// outcome is declined.

import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { encodeBatchReply } from './batch-frame.js';
import { ERRORS, errorRecord, type ErrorCode } from './errors.js';
import { replyValue } from './frames.js';
import { MAX_MINOR } from './money.js';
import type { Outcome, TransactionView } from './types.js';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const packr = new Packr({ useRecords: false });

/** Decoded, as JSON text: equal text means equal values with keys in the same order. */
function decoded(bytes: Uint8Array): string {
  return JSON.stringify(unpackr.unpack(bytes));
}

const viewArb: fc.Arbitrary<TransactionView> = fc.record({
  id: fc.string({ minLength: 1, maxLength: 300, unit: 'grapheme' }),
  status: fc.constantFrom('posted' as const, 'pending' as const, 'voided' as const),
  fromAccountId: fc.string({ minLength: 1, maxLength: 40 }),
  toAccountId: fc.constantFrom('a', 'ü-€', '😀'),
  amountMinor: fc.bigInt({ min: 1n, max: MAX_MINOR }),
  postedAmountMinor: fc.bigInt({ min: 0n, max: MAX_MINOR }),
  currencyCode: fc.constantFrom('USD', 'JPY', 'BHD'),
  description: fc.option(fc.string({ maxLength: 70000, unit: 'grapheme-ascii' }),
    { freq: 3 }),
  paymentTypeId: fc.option(fc.constantFrom('card', 'sepa')),
  createdAt: fc.integer({ min: 0, max: 253_402_300_799_000 }),
  sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  expiresAt: fc.option(fc.integer({ min: 0, max: 253_402_300_799_000 })),
});

const itemArb: fc.Arbitrary<Outcome> = fc.oneof(
  viewArb.map((value): Outcome => ({ ok: true, created: true, value })),
  fc.constantFrom(...(Object.keys(ERRORS) as ErrorCode[]))
    .map((code): Outcome => ({ ok: false, error: errorRecord(code) })),
);

describe('batch-frame', () => {
  it('encodes what msgpack of replyValue encodes, for any batch (property)', () => {
    const ridArb = fc.oneof(fc.constant(null), fc.integer({ min: -(2 ** 53) + 1,
      max: 2 ** 53 - 1 }), fc.string({ minLength: 1, maxLength: 64 }));
    fc.assert(fc.property(ridArb, fc.array(itemArb, { maxLength: 40 }), (rid, results) => {
      const outcome: Outcome = { ok: true, created: true, value: { results } };
      const bytes = encodeBatchReply(rid, outcome);
      expect(bytes).not.toBeNull();
      expect(decoded(bytes as Uint8Array)).toBe(decoded(packr.pack(replyValue(rid, outcome))));
    }), { numRuns: 200 });
  });

  it('writes map and array headers past 15 and 65535 items', () => {
    const view: TransactionView = { id: 't', status: 'posted', fromAccountId: 'a',
      toAccountId: 'b', amountMinor: 5n, postedAmountMinor: 5n, currencyCode: 'USD',
      description: null, paymentTypeId: null, createdAt: 0, sequence: 1, expiresAt: null };
    for (const n of [15, 16, 65535, 65536]) {
      const results: Outcome[] = Array.from({ length: n }, () => ({ ok: true, created: true,
        value: view }));
      const outcome: Outcome = { ok: true, created: true, value: { results } };
      const bytes = encodeBatchReply(1, outcome) as Uint8Array;
      expect(decoded(bytes)).toBe(decoded(packr.pack(replyValue(1, outcome))));
    }
  });

  it('declines anything that is not a batch of transfers and errors', () => {
    expect(encodeBatchReply(1, { ok: false, error: errorRecord('overloaded') })).toBeNull();
    expect(encodeBatchReply(1, { ok: true, created: false,
      value: { entries: [], next: null } })).toBeNull();
    expect(encodeBatchReply(1, { ok: true, created: false, value: { results: [
      { ok: true, created: false, value: { entries: [], next: null } }] } })).toBeNull();
  });
});
