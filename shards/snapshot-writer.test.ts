// SnapshotWriter: a snapshot taken in steps while batches keep changing the shard holds exactly
// the state at the sequence it was started at (the bytes encodeSnapshot gave at that moment),
// whatever happens in between: new tenants, accounts and transfers, holds posted, voided or
// timed out, wide amounts, rejections and rolled-back atomic batches. Failing seeds replay.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { Command, Envelope, Outcome, TransferCmd } from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { decodeSnapshot, encodeSnapshot, stateDigest } from './snapshot-codec.js';
import { ByteArena } from './snapshot-bytes.js';
import { SnapshotWriter, type BookColumns } from './snapshot-writer.js';
import type { TenantBook } from './ledger-book.js';
import { applyBatch, createShardState, type ShardState } from './state-machine.js';

const TENANTS = ['ta', 'tb', 'tc'];
const ACCOUNTS = ['fund', 'a', 'b', 'c'];
const WIDE = 2n ** 60n; // past 2^53: totals and amounts take the bigint paths

function transfer(id: string, from: string, to: string, amount: bigint, pending: boolean,
  timeoutSeconds: number | null, description: string | null): TransferCmd {
  return { op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'EUR', description, paymentTypeId: null, pending, timeoutSeconds };
}

/** One random command over a small id space, so posts and voids find their holds. */
const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({ id: fc.constantFrom(...ACCOUNTS), neg: fc.boolean() }).map(({ id, neg }) => ({
    op: 'createAccount' as const, id, currencyCode: 'EUR', allowNegative: id === 'fund' || neg,
    metadata: '{"k":"ü"}' })),
  fc.record({ n: fc.nat(40), from: fc.constantFrom(...ACCOUNTS), to: fc.constantFrom(...ACCOUNTS),
    amount: fc.oneof(fc.bigInt(1n, 500n), fc.constant(WIDE)), pending: fc.boolean(),
    timeout: fc.constantFrom(null, 1, 30), described: fc.boolean() })
    .map((x) => transfer(`x${x.n}`, x.from, x.to, x.amount, x.pending,
      x.pending ? x.timeout : null, x.described ? 'for "tea"' : null)),
  fc.record({ n: fc.nat(40), amount: fc.option(fc.bigInt(1n, 300n)) })
    .map(({ n, amount }) => ({ op: 'post' as const, id: `x${n}`, amountMinor: amount })),
  fc.nat(40).map((n) => ({ op: 'void' as const, id: `x${n}` })),
  fc.record({ n: fc.nat(40), atomic: fc.boolean() }).map(({ n, atomic }) => ({
    op: 'transferBatch' as const, atomic, transactions: [
      transfer(`y${n}`, 'fund', 'a', 7n, false, null, null),
      transfer(`y${n + 1}`, 'a', 'nobody', 1n, false, null, null)] })),
);

const batch = fc.array(fc.record({ tenant: fc.constantFrom(...TENANTS), cmd: command }),
  { minLength: 1, maxLength: 12 });

/** Batch k at logical time k seconds (holds with a 1 s timeout expire on later batches). */
function run(state: ShardState, envelopes: Envelope[], k: number): void {
  const results: Outcome[] = [];
  const entries: JournalEntry[] = [];
  applyBatch(state, envelopes, 1_700_000_000_000 + k * 1000, results, entries);
}

describe('SnapshotWriter', () => {
  it('holds exactly the state at its sequence while batches go on between its steps', () => {
    fc.assert(fc.property(fc.array(batch, { minLength: 1, maxLength: 25 }),
      fc.array(batch, { maxLength: 25 }), (before, during) => {
        const state = createShardState(2, 5);
        before.forEach((envelopes, k) => run(state, envelopes, k));
        const expected = Buffer.from(encodeSnapshot(state));
        const writer = new SnapshotWriter(state);
        let k = before.length;
        // One work item per step, a batch after each: the most interleaving there can be.
        while (!writer.step(() => true)) {
          const next = during[k - before.length];
          if (next !== undefined) run(state, next, k);
          k++;
        }
        for (; k - before.length < during.length; k++) {
          run(state, during[k - before.length] as Envelope[], k);
        }
        expect(Buffer.from(writer.result()).equals(expected)).toBe(true);
        checkInvariants(decodeSnapshot(writer.result()));
      }), { numRuns: 300 });
  });

  it('takes unchanged columns from the snapshots before it and still writes the state', () => {
    const steps = fc.array(fc.record({ envelopes: batch, snapshot: fc.boolean() }),
      { minLength: 5, maxLength: 40 });
    fc.assert(fc.property(steps, (plan) => {
      const state = createShardState(4, 1);
      const columns = new WeakMap<TenantBook, BookColumns>();
      let k = 0;
      while (k < plan.length) {
        const { envelopes, snapshot } = plan[k] as { envelopes: Envelope[]; snapshot: boolean };
        run(state, envelopes, k++);
        if (!snapshot) continue;
        const writer = new SnapshotWriter(state, { columns, arena: new ByteArena() });
        const expected = Buffer.from(encodeSnapshot(state));
        while (!writer.step(() => true)) { // and the shard goes on between the steps
          const next = plan[k];
          if (next !== undefined && !next.snapshot) run(state, next.envelopes, k++);
        }
        expect(Buffer.from(writer.result()).equals(expected)).toBe(true);
      }
    }), { numRuns: 300 });
  });

  it('takes a recovered shard\'s unchanged columns from the snapshot it was decoded from', () => {
    fc.assert(fc.property(fc.array(batch, { minLength: 1, maxLength: 25 }),
      fc.array(batch, { maxLength: 25 }), (before, after) => {
        const live = createShardState(3, 2);
        before.forEach((envelopes, k) => run(live, envelopes, k));
        const columns = new WeakMap<TenantBook, BookColumns>();
        const recovered = decodeSnapshot(Buffer.from(encodeSnapshot(live)), 'verify', columns);
        const seeded = [...recovered.tenants.values()].map((book) => columns.get(book));
        expect(seeded.every((c) => c !== undefined)).toBe(true);
        after.forEach((envelopes, k) => {
          run(live, envelopes, before.length + k);
          run(recovered, envelopes, before.length + k);
        });
        const writer = new SnapshotWriter(recovered, { columns });
        while (!writer.step(() => false));
        expect(Buffer.from(writer.result()).equals(Buffer.from(encodeSnapshot(live)))).toBe(true);
        [...recovered.tenants.values()].forEach((book, k) => {
          if (k < seeded.length) expect(columns.get(book)).toBe(seeded[k]); // used, not rebuilt
        });
      }), { numRuns: 300 });
  });

  it('reads totals back through effects, also for accounts that went wide', () => {
    const state = createShardState(1, 1);
    const env = (cmd: Command): Envelope => ({ tenant: 't', cmd });
    run(state, ['fund', 'a'].map((id) => env({ op: 'createAccount', id, currencyCode: 'EUR',
      allowNegative: id === 'fund', metadata: '{}' })), 0);
    run(state, [env(transfer('h', 'fund', 'a', 50n, true, null, null))], 1);
    const atHold = stateDigest(state);
    const writer = new SnapshotWriter(state);
    run(state, [env(transfer('w', 'fund', 'a', WIDE, false, null, null)),
      env({ op: 'post', id: 'h', amountMinor: 20n })], 2);
    while (!writer.step(() => false));
    expect(stateDigest(decodeSnapshot(writer.result()))).toBe(atHold);
    expect(Buffer.from(writer.digest()).toString('hex'))
      .toBe(createHash('sha256').update(writer.result()).digest('hex'));
    expect(state.tenants.get('t')?.accounts.get('a')?.wide).toBe(true);
  });
});
