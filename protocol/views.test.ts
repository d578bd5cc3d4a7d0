// Tests for views.ts: the API.md JSON shapes and HTTP statuses of outcomes.
// Pure: no I/O, no timing assertions.

import { describe, expect, it } from 'vitest';
import { errorRecord } from './errors.js';
import { MAX_MINOR } from './money.js';
import type { AccountView, EntriesPage, Outcome, TransactionView } from './types.js';
import { isoTime, outcomeBody, renderEntriesPage, renderValue } from './views.js';

const T0 = Date.UTC(2024, 4, 1, 12, 0, 0);

const account: AccountView = {
  id: 'alice', currencyCode: 'USD', allowNegative: false, metadata: '{"tier":"gold"}',
  balanceMinor: -105n, postedDebits: 205n, postedCredits: 100n, pendingDebits: 0n,
  pendingCredits: MAX_MINOR, createdAt: T0,
};

const tx: TransactionView = {
  id: 'tx-1', status: 'posted', fromAccountId: 'alice', toAccountId: 'bob', amountMinor: 10050n,
  postedAmountMinor: 10050n, currencyCode: 'USD', description: null, paymentTypeId: null,
  createdAt: T0, sequence: 7, expiresAt: null,
};

describe('renderValue', () => {
  it('renders an account with both money forms and totals as strings', () => {
    expect(renderValue(account)).toEqual({
      id: 'alice', currencyCode: 'USD', allowNegative: false, balance: '-1.05',
      balanceMinor: '-105', postedDebits: '205', postedCredits: '100', pendingDebits: '0',
      pendingCredits: '9223372036854775807', metadata: { tier: 'gold' },
      createdAt: '2024-05-01T12:00:00.000Z',
    });
  });

  it('renders a plain posted transaction in the API.md shape, optional fields left out', () => {
    expect(renderValue(tx)).toEqual({
      id: 'tx-1', status: 'posted', fromAccountId: 'alice', toAccountId: 'bob', amount: '100.50',
      amountMinor: '10050', currencyCode: 'USD', createdAt: '2024-05-01T12:00:00.000Z',
      sequence: 7,
    });
  });

  it('adds description, paymentTypeId, expiresAt and a partial posted amount when set', () => {
    const pending = { ...tx, status: 'pending' as const, postedAmountMinor: 0n,
      description: 'rent', paymentTypeId: 'sepa', expiresAt: T0 + 60_000, currencyCode: 'JPY' };
    expect(renderValue(pending)).toEqual({
      id: 'tx-1', status: 'pending', fromAccountId: 'alice', toAccountId: 'bob', amount: '10050',
      amountMinor: '10050', currencyCode: 'JPY', description: 'rent', paymentTypeId: 'sepa',
      createdAt: '2024-05-01T12:00:00.000Z', sequence: 7, expiresAt: '2024-05-01T12:01:00.000Z',
    });
    const partial = renderValue({ ...tx, postedAmountMinor: 5000n });
    expect(partial).toMatchObject({ postedAmount: '50.00', postedAmountMinor: '5000' });
    expect(renderValue({ ...tx, status: 'voided', postedAmountMinor: 0n }))
      .not.toHaveProperty('postedAmount');
  });

  it('renders entries pages, with amount when the account currency is known', () => {
    const page: EntriesPage = { next: '42', entries: [{ sequence: 3, transactionId: 'tx-1',
      kind: 'post', direction: 'debit', amountMinor: 1234n, createdAt: T0 }] };
    const entry = { sequence: 3, transactionId: 'tx-1', kind: 'post', direction: 'debit',
      amountMinor: '1234', createdAt: '2024-05-01T12:00:00.000Z' };
    expect(renderValue(page)).toEqual({ entries: [entry], next: '42' });
    expect(renderEntriesPage(page, 'KWD'))
      .toEqual({ entries: [{ ...entry, amount: '1.234' }], next: '42' });
  });

  it('renders batch results in request order, errors in place', () => {
    const results: Outcome[] = [
      { ok: true, created: true, value: tx },
      { ok: false, error: errorRecord('batch_failed') },
    ];
    expect(renderValue({ results })).toEqual({ results: [
      renderValue(tx),
      { error: { code: 'batch_failed', message: 'another transaction of the atomic batch failed',
        retryable: false } },
    ] });
  });

  it('always produces JSON-serialisable output (no bigint)', () => {
    const batch = { results: [{ ok: true as const, created: false, value: tx }] };
    for (const v of [account, tx, batch]) {
      expect(() => JSON.stringify(renderValue(v))).not.toThrow();
    }
  });
});

describe('outcomeBody', () => {
  it('answers 201 for a write applied now, 200 for a replay or read', () => {
    expect(outcomeBody({ ok: true, created: true, value: tx }).status).toBe(201);
    expect(outcomeBody({ ok: true, created: false, value: tx }).status).toBe(200);
    expect(outcomeBody({ ok: true, created: false, value: account }).status).toBe(200);
  });

  it('answers 201 for a batch, as API.md specifies', () => {
    expect(outcomeBody({ ok: true, created: false, value: { results: [] } }))
      .toEqual({ status: 201, body: { results: [] } });
  });

  it('answers errors with the catalogue status and body', () => {
    expect(outcomeBody({ ok: false, error: errorRecord('insufficient_funds') })).toEqual({
      status: 422,
      body: { error: {
        code: 'insufficient_funds', message: 'insufficient funds', retryable: false,
      } },
    });
    expect(outcomeBody({ ok: false, error: errorRecord('storage_unavailable') }).status).toBe(503);
    expect(outcomeBody({ ok: false, error: errorRecord('account_not_found', 'x') }).body)
      .toEqual({ error: { code: 'account_not_found', message: 'x', retryable: false } });
  });
});

describe('isoTime', () => {
  it('gives each time its own string, also when times alternate (it keeps only the last)', () => {
    const times = [T0, T0, T0 + 1, T0, -1, 0, 0, 8.64e15, T0 + 1];
    for (const ms of times) expect(isoTime(ms)).toBe(new Date(ms).toISOString());
  });
});
