// Invariant checker tests: it passes on real states and names tenant, currency and account
// when a state is corrupted behind the state machine's back.

import { describe, expect, it } from 'vitest';
import type { Command, Outcome } from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { applyBatch, createShardState, type ShardState } from './state-machine.js';

function shard(): ShardState {
  const state = createShardState(0, 1);
  const cmds: Command[] = [
    { op: 'createAccount', id: 'fund', currencyCode: 'EUR', allowNegative: true, metadata: '{}' },
    { op: 'createAccount', id: 'acc', currencyCode: 'EUR', allowNegative: false, metadata: '{}' },
    { op: 'transfer', id: 't', fromAccountId: 'fund', toAccountId: 'acc', amountMinor: 10n,
      currencyCode: 'EUR', description: null, paymentTypeId: null, pending: false,
      timeoutSeconds: null },
    { op: 'transfer', id: 'h', fromAccountId: 'acc', toAccountId: 'fund', amountMinor: 4n,
      currencyCode: 'EUR', description: null, paymentTypeId: null, pending: true,
      timeoutSeconds: 60 },
  ];
  const results: Outcome[] = [];
  applyBatch(state, cmds.map((cmd) => ({ tenant: 'tn', cmd })), 1, results, []);
  expect(results.every((r) => r.ok)).toBe(true);
  return state;
}

function account(state: ShardState, id: string) {
  const found = state.tenants.get('tn')?.accounts.get(id);
  if (found === undefined) throw new Error('missing account');
  return found;
}

describe('checkInvariants', () => {
  it('accepts a state built by the state machine', () => {
    expect(() => checkInvariants(shard())).not.toThrow();
  });

  it('names tenant and currency when balances do not sum to zero', () => {
    const state = shard();
    account(state, 'fund').postedCredits += 1n;
    expect(() => checkInvariants(state)).toThrow(/tenant tn currency EUR: balances sum to 1/);
  });

  it('names the account that went below zero counting pending debits', () => {
    const state = shard();
    const acc = account(state, 'acc');
    const fund = account(state, 'fund');
    acc.pendingDebits += 7n;
    fund.pendingCredits += 7n;
    expect(() => checkInvariants(state)).toThrow(/tenant tn currency EUR account acc: below zero/);
  });

  it('notices holds that no pending transfer backs', () => {
    const state = shard();
    account(state, 'acc').pendingDebits -= 1n;
    account(state, 'fund').pendingCredits -= 1n;
    expect(() => checkInvariants(state)).toThrow(/account (fund|acc): holds differ/);
  });

  it('notices a pending transfer missing from the timeout queue', () => {
    const state = shard();
    state.timeouts.items.length = 0;
    expect(() => checkInvariants(state)).toThrow(/transaction h: timeout queue out of step/);
  });
});
