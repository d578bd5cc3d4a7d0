// Tests for thread-codec.ts: outcomes round-trip (bigint intact, nested batch results), and
// bytes that are not an outcome list are refused.

import { describe, expect, it } from 'vitest';
import { errorRecord } from './errors.js';
import { MAX_MINOR } from './money.js';
import { decodeOutcomes, encodeOutcomes } from './thread-codec.js';
import type { AccountView, Outcome } from './types.js';

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

describe('malformed outcome bytes', () => {
  it('throws on bytes that are not an outcome list (a bug, not input)', () => {
    expect(() => decodeOutcomes(Uint8Array.from([0xa1, 0x78]))).toThrow(TypeError);
  });
});
