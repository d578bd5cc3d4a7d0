// Example tests of the shard state machine, one behaviour each; the random-stream model check
// lives in model.test.ts. Each test builds its own state (no shared fixtures between tests).

import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type {
  AccountView, BatchResultValue, Command, EntriesPage, Outcome, TransactionView, TransferCmd,
} from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { stateDigest } from './snapshot-codec.js';
import { applyBatch, applyEntry, createShardState, type ShardState } from './state-machine.js';

class Shard {
  readonly state: ShardState = createShardState(1, 2);
  readonly journal: JournalEntry[] = [];
  now = 1_000;

  run(cmds: Command[], tenant = 't1'): Outcome[] {
    const results: Outcome[] = [];
    const entries: JournalEntry[] = [];
    applyBatch(this.state, cmds.map((cmd) => ({ tenant, cmd })), this.now, results, entries);
    this.journal.push(...entries);
    checkInvariants(this.state);
    return results;
  }

  one(cmd: Command, tenant = 't1'): Outcome {
    const [outcome] = this.run([cmd], tenant);
    if (outcome === undefined) throw new Error('no outcome');
    return outcome;
  }

  open(id: string, allowNegative = false, currencyCode = 'USD', tenant = 't1'): void {
    const outcome = this.one({ op: 'createAccount', id, currencyCode, allowNegative,
      metadata: '{}' }, tenant);
    expect(outcome.ok).toBe(true);
  }

  account(id: string, tenant = 't1'): AccountView {
    return value<AccountView>(this.one({ op: 'getAccount', id }, tenant));
  }
}

function tx(id: string, from: string, to: string, amount: bigint, more: Partial<TransferCmd> = {}) {
  const cmd: TransferCmd = { op: 'transfer', id, fromAccountId: from, toAccountId: to,
    amountMinor: amount, currencyCode: 'USD', description: null, paymentTypeId: null,
    pending: false, timeoutSeconds: null, ...more };
  return cmd;
}

function value<T>(outcome: Outcome): T {
  if (!outcome.ok) throw new Error(`expected ok, got ${outcome.error.code}`);
  return outcome.value as T;
}

function code(outcome: Outcome): ErrorCode | 'ok' {
  return outcome.ok ? 'ok' : outcome.error.code;
}

/** fund (may go negative) -> alice 1000; bob empty. */
function funded(): Shard {
  const shard = new Shard();
  shard.open('fund', true);
  shard.open('alice');
  shard.open('bob');
  expect(code(shard.one(tx('seed', 'fund', 'alice', 1000n)))).toBe('ok');
  return shard;
}

describe('accounts', () => {
  it('opens an account once and answers the same body with the same view', () => {
    const shard = new Shard();
    const first = shard.one({ op: 'createAccount', id: 'a', currencyCode: 'EUR',
      allowNegative: false, metadata: '{"k":1}' });
    const again = shard.one({ op: 'createAccount', id: 'a', currencyCode: 'EUR',
      allowNegative: false, metadata: '{"k":1}' });
    expect(first).toMatchObject({ ok: true, created: true });
    expect(again).toEqual({ ...first, created: false });
    expect(shard.journal.map((e) => e.kind)).toEqual(['account-open']);
    expect(shard.journal[0]?.detail).toBe('{"allowNegative":false,"metadata":{"k":1}}');
  });

  it('rejects an account id reused with a different body', () => {
    const shard = new Shard();
    shard.open('a');
    expect(code(shard.one({ op: 'createAccount', id: 'a', currencyCode: 'EUR',
      allowNegative: false, metadata: '{}' }))).toBe('account_exists');
  });

  it('keeps tenants apart: another tenant sees nothing', () => {
    const shard = funded();
    expect(code(shard.one({ op: 'getAccount', id: 'alice' }, 't2'))).toBe('account_not_found');
    expect(code(shard.one(tx('t', 'fund', 'alice', 1n), 't2'))).toBe('account_not_found');
    expect(code(shard.one({ op: 'getTransaction', id: 'seed' }, 't2')))
      .toBe('transaction_not_found');
    expect(shard.account('alice').balanceMinor).toBe(1000n);
  });
});

describe('transfers', () => {
  it('posts a transfer and moves the balance', () => {
    const shard = funded();
    const view = value<TransactionView>(shard.one(tx('p1', 'alice', 'bob', 300n)));
    expect(view).toMatchObject({ status: 'posted', amountMinor: 300n, postedAmountMinor: 300n });
    expect(shard.account('alice').balanceMinor).toBe(700n);
    expect(shard.account('bob').balanceMinor).toBe(300n);
  });

  it('answers a replay with the same body with the original result', () => {
    const shard = funded();
    const first = shard.one(tx('p1', 'alice', 'bob', 300n));
    const again = shard.one(tx('p1', 'alice', 'bob', 300n));
    expect(again).toEqual({ ...first, created: false });
    expect(shard.account('bob').balanceMinor).toBe(300n);
  });

  it('rejects a replay with a different body', () => {
    const shard = funded();
    shard.one(tx('p1', 'alice', 'bob', 300n));
    expect(code(shard.one(tx('p1', 'alice', 'bob', 301n)))).toBe('conflict');
    expect(code(shard.one(tx('p1', 'alice', 'bob', 300n, { description: 'x' })))).toBe('conflict');
  });

  it('records a rejection so the replay gets the same error even after funding', () => {
    const shard = funded();
    expect(code(shard.one(tx('big', 'alice', 'bob', 5000n)))).toBe('insufficient_funds');
    shard.one(tx('more', 'fund', 'alice', 10_000n));
    expect(code(shard.one(tx('big', 'alice', 'bob', 5000n)))).toBe('insufficient_funds');
    expect(code(shard.one({ op: 'getTransaction', id: 'big' }))).toBe('transaction_not_found');
    expect(shard.journal.filter((e) => e.kind === 'reject')).toHaveLength(1);
  });

  it('checks rules in precedence order', () => {
    const shard = funded();
    shard.open('euro', false, 'EUR');
    expect(code(shard.one(tx('r1', 'alice', 'alice', 1n)))).toBe('same_account');
    expect(code(shard.one(tx('r2', 'alice', 'nobody', 1n)))).toBe('account_not_found');
    expect(code(shard.one(tx('r3', 'alice', 'euro', 1n)))).toBe('currency_mismatch');
    expect(code(shard.one(tx('r4', 'fund', 'bob', 2n ** 63n - 1n)))).toBe('balance_overflow');
    expect(code(shard.one(tx('r5', 'bob', 'alice', 1n)))).toBe('insufficient_funds');
  });

  it('counts pending debits against the balance', () => {
    const shard = funded();
    expect(code(shard.one(tx('h', 'alice', 'bob', 800n, { pending: true })))).toBe('ok');
    expect(code(shard.one(tx('p', 'alice', 'bob', 300n)))).toBe('insufficient_funds');
    expect(shard.account('alice')).toMatchObject({ balanceMinor: 1000n, pendingDebits: 800n });
  });
});

describe('two-phase transfers', () => {
  it('partial post releases the rest', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 600n, { pending: true }));
    const posted = value<TransactionView>(shard.one({ op: 'post', id: 'h', amountMinor: 250n }));
    expect(posted).toMatchObject({ status: 'posted', amountMinor: 600n, postedAmountMinor: 250n });
    expect(shard.account('alice')).toMatchObject({ balanceMinor: 750n, pendingDebits: 0n });
    expect(shard.account('bob')).toMatchObject({ balanceMinor: 250n, pendingCredits: 0n });
    expect(shard.one({ op: 'post', id: 'h', amountMinor: null })).toMatchObject({ created: false });
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: 1n })))
      .toBe('transaction_not_pending');
  });

  it('reads a decimal post amount with the transaction\'s own currency exponent', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 600n, { pending: true }));
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: null, amountDecimal: '1.005' })))
      .toBe('invalid_amount');
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: 250n, currencyCode: 'EUR' })))
      .toBe('currency_mismatch');
    const posted = shard.one({ op: 'post', id: 'h', amountMinor: null, amountDecimal: '2.50' });
    expect(value<TransactionView>(posted)).toMatchObject({ postedAmountMinor: 250n });
    expect(shard.one({ op: 'post', id: 'h', amountMinor: null, amountDecimal: '2.50' }))
      .toMatchObject({ ok: true, created: false });
  });

  it('refuses to post more than the hold', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 100n, { pending: true }));
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: 101n })))
      .toBe('amount_exceeds_pending');
  });

  it('voids a hold once and answers later voids as already done', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 100n, { pending: true }));
    expect(shard.one({ op: 'void', id: 'h' })).toMatchObject({ ok: true, created: true });
    expect(shard.one({ op: 'void', id: 'h' })).toMatchObject({ ok: true, created: false });
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: null })))
      .toBe('transaction_not_pending');
    expect(shard.account('alice').pendingDebits).toBe(0n);
  });

  it('refuses post and void on unknown or posted transfers', () => {
    const shard = funded();
    expect(code(shard.one({ op: 'void', id: 'nope' }))).toBe('transaction_not_found');
    expect(code(shard.one({ op: 'post', id: 'nope', amountMinor: null })))
      .toBe('transaction_not_found');
    expect(code(shard.one({ op: 'void', id: 'seed' }))).toBe('transaction_not_pending');
    expect(code(shard.one({ op: 'post', id: 'seed', amountMinor: null })))
      .toBe('transaction_not_pending');
  });

  it('pending transfer is voided after its timeout', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 100n, { pending: true, timeoutSeconds: 2 }));
    shard.now += 1999;
    expect(shard.run([])).toEqual([]);
    expect(shard.account('alice').pendingDebits).toBe(100n);
    shard.now += 1;
    shard.run([]);
    const last = shard.journal[shard.journal.length - 1];
    expect(last).toMatchObject({ kind: 'void', id: 'h', amountMinor: 100n,
      detail: '{"reason":"timeout"}', time: shard.now });
    expect(shard.account('alice').pendingDebits).toBe(0n);
    expect(code(shard.one({ op: 'post', id: 'h', amountMinor: null }))).toBe('pending_expired');
  });

  it('voids expired holds in (expiresAt, tenant, id) order', () => {
    const shard = funded();
    shard.open('fund', true, 'USD', 't0');
    shard.open('x', false, 'USD', 't0');
    shard.one(tx('z', 'fund', 'bob', 1n, { pending: true, timeoutSeconds: 1 }));
    shard.one(tx('a', 'fund', 'bob', 1n, { pending: true, timeoutSeconds: 1 }));
    shard.one(tx('m', 'fund', 'x', 1n, { pending: true, timeoutSeconds: 1 }), 't0');
    shard.one(tx('early', 'fund', 'bob', 1n, { pending: true, timeoutSeconds: 0 }));
    shard.now += 60_000;
    const before = shard.journal.length;
    shard.run([]);
    expect(shard.journal.slice(before).map((e) => `${e.tenant}/${e.id}`))
      .toEqual(['t0/m', 't1/a', 't1/z']);
  });
});

describe('batches', () => {
  it('atomic batch applies nothing when one item fails', () => {
    const shard = funded();
    const digest = stateDigest(shard.state);
    const outcome = shard.one({ op: 'transferBatch', atomic: true, transactions: [
      tx('b1', 'alice', 'bob', 600n), tx('b2', 'alice', 'bob', 600n), tx('b3', 'bob', 'alice', 1n),
    ] });
    const { results } = value<BatchResultValue>(outcome);
    expect(results.map(code)).toEqual(['batch_failed', 'insufficient_funds', 'batch_failed']);
    expect(outcome).toMatchObject({ created: false });
    expect(stateDigest(shard.state)).toBe(digest);
    expect(code(shard.one({ op: 'getTransaction', id: 'b1' }))).toBe('transaction_not_found');
    expect(code(shard.one(tx('b2', 'alice', 'bob', 600n)))).toBe('ok');
  });

  it('atomic batch items see the earlier items', () => {
    const shard = funded();
    const outcome = shard.one({ op: 'transferBatch', atomic: true, transactions: [
      tx('b1', 'alice', 'bob', 600n), tx('b2', 'bob', 'alice', 600n),
      tx('b1', 'alice', 'bob', 600n),
    ] });
    const { results } = value<BatchResultValue>(outcome);
    expect(results.map((r) => (r.ok ? r.created : code(r)))).toEqual([true, true, false]);
    expect(shard.account('alice').balanceMinor).toBe(1000n);
  });

  it('non-atomic batch keeps the items that succeed and records the rejections', () => {
    const shard = funded();
    const outcome = shard.one({ op: 'transferBatch', atomic: false, transactions: [
      tx('n1', 'alice', 'bob', 600n), tx('n2', 'alice', 'bob', 600n),
    ] });
    const { results } = value<BatchResultValue>(outcome);
    expect(results.map(code)).toEqual(['ok', 'insufficient_funds']);
    expect(shard.journal.slice(-2).map((e) => e.kind)).toEqual(['post', 'reject']);
  });
});

describe('entries and replay', () => {
  it('pages an account history with an opaque cursor', () => {
    const shard = funded();
    for (let i = 0; i < 5; i++) shard.one(tx(`e${i}`, 'alice', 'bob', 1n));
    const first = value<EntriesPage>(shard.one({ op: 'listEntries', accountId: 'alice',
      limit: 4, after: null }));
    expect(first.entries.map((e) => e.kind)).toEqual(['account-open', 'post', 'post', 'post']);
    expect(first.entries[1]).toMatchObject({ direction: 'credit', transactionId: 'seed' });
    expect(first.entries[2]).toMatchObject({ direction: 'debit', transactionId: 'e0' });
    const second = value<EntriesPage>(shard.one({ op: 'listEntries', accountId: 'alice',
      limit: 4, after: first.next }));
    expect(second.entries.map((e) => e.transactionId)).toEqual(['e2', 'e3', 'e4']);
    expect(second.next).toBeNull();
    expect(code(shard.one({ op: 'listEntries', accountId: 'alice', limit: 4, after: 'x' })))
      .toBe('invalid_cursor');
  });

  it('rebuilds exactly the live state from the journal', () => {
    const shard = funded();
    shard.one(tx('h', 'alice', 'bob', 100n, { pending: true, timeoutSeconds: 1 }));
    shard.one(tx('h2', 'alice', 'bob', 100n, { pending: true }));
    shard.one({ op: 'post', id: 'h2', amountMinor: 40n });
    shard.one(tx('bad', 'bob', 'alice', 1_000_000n));
    shard.now += 5_000;
    shard.run([]);
    const replayed = createShardState(1, 2);
    for (const entry of shard.journal) applyEntry(replayed, entry);
    expect(stateDigest(replayed)).toBe(stateDigest(shard.state));
  });

  it('writes no detail for a plain transfer, and replays the older full form the same', () => {
    const shard = funded();
    shard.one(tx('plain', 'alice', 'bob', 7n));
    shard.one(tx('held', 'alice', 'bob', 9n, { pending: true }));
    const plain = shard.journal.filter((e) => e.kind === 'post' || e.kind === 'pending');
    expect(plain.map((e) => e.detail)).toEqual(plain.map(() => ''));
    // What journals written before this form carry for the same transfers.
    const legacy = shard.journal.map((e) => (e.detail === '' && e.kind !== 'account-open'
      ? { ...e, detail: '{"description":null,"paymentTypeId":null,"timeoutSeconds":null}' }
      : e));
    const replayed = createShardState(1, 2);
    for (const entry of legacy) applyEntry(replayed, entry);
    expect(stateDigest(replayed)).toBe(stateDigest(shard.state));
  });

  it('leaves the clock alone when a batch writes nothing', () => {
    const shard = funded();
    const time = shard.state.time;
    shard.now += 10_000;
    shard.run([{ op: 'getAccount', id: 'alice' }]);
    expect(shard.state.time).toBe(time);
  });

  it('refuses an entry out of sequence', () => {
    const shard = funded();
    const replayed = createShardState(1, 2);
    const second = shard.journal[1];
    if (second === undefined) throw new Error('journal too short');
    expect(() => applyEntry(replayed, second)).toThrow(/sequence 2 after 0/);
  });
});
