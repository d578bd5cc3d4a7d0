// Number/bigint forms of money in the books: totals kept as safe-integer numbers switch to
// bigint past 2^53 - 1 and stay exact; amounts too large for a number column stay exact.

import { describe, expect, it } from 'vitest';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { AccountView, Command, Outcome, TransactionView } from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { decodeSnapshot, encodeSnapshot, stateDigest } from './snapshot-codec.js';
import { applyBatch, applyEntry, createShardState } from './state-machine.js';

const SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function tx(id: string, amountMinor: bigint, pending = false): Command {
  return { op: 'transfer', id, fromAccountId: 'fund', toAccountId: 'acc', amountMinor,
    currencyCode: 'USD', description: null, paymentTypeId: null, pending,
    timeoutSeconds: null };
}

describe('ledger book money forms', () => {
  it('keeps totals exact across 2^53 and rebuilds the same state by replay and snapshot', () => {
    const state = createShardState(0, 1);
    const journal: JournalEntry[] = [];
    const run = (cmds: Command[]): Outcome[] => {
      const results: Outcome[] = [];
      applyBatch(state, cmds.map((cmd) => ({ tenant: 't', cmd })), 5, results, journal);
      checkInvariants(state);
      return results;
    };
    run([{ op: 'createAccount', id: 'fund', currencyCode: 'USD', allowNegative: true,
      metadata: '{}' }, { op: 'createAccount', id: 'acc', currencyCode: 'USD',
      allowNegative: false, metadata: '{}' }]);
    const results = run([tx('a', SAFE), tx('b', 2n), tx('c', SAFE + 10n, true),
      { op: 'post', id: 'c', amountMinor: SAFE + 3n }, tx('d', 1n)]);
    expect(results.every((r) => r.ok)).toBe(true);
    const posted = results[3];
    expect(posted?.ok && (posted.value as TransactionView).postedAmountMinor).toBe(SAFE + 3n);
    const [view] = run([{ op: 'getAccount', id: 'acc' }]);
    expect(view?.ok && (view.value as AccountView).balanceMinor).toBe(2n * SAFE + 6n);
    const replayed = createShardState(0, 1);
    for (const entry of journal) applyEntry(replayed, entry);
    expect(stateDigest(replayed)).toBe(stateDigest(state));
    const restored = decodeSnapshot(encodeSnapshot(state));
    checkInvariants(restored);
    expect(stateDigest(restored)).toBe(stateDigest(state));
    expect(run([{ op: 'getTransaction', id: 'c' }])).toEqual([{ ok: true, created: false,
      value: expect.objectContaining({ amountMinor: SAFE + 10n, postedAmountMinor: SAFE + 3n,
        status: 'posted' }) }]);
  });

  it('reads and writes totals in either form through the bigint accessors', () => {
    const state = createShardState(0, 1);
    applyBatch(state, [{ tenant: 't', cmd: { op: 'createAccount', id: 'x', currencyCode: 'EUR',
      allowNegative: true, metadata: '{}' } }], 1, [], []);
    const account = state.tenants.get('t')?.accounts.get('x');
    if (account === undefined) throw new Error('no account');
    account.postedDebits += 5n;
    expect(account.postedDebits).toBe(5n);
    account.pendingCredits = SAFE + 1n;
    account.postedCredits = -3n;
    expect([account.postedDebits, account.postedCredits, account.pendingDebits,
      account.pendingCredits]).toEqual([5n, -3n, 0n, SAFE + 1n]);
  });
});
