// Snapshot codec tests: deterministic bytes, complete round trips (behaviour after decode is
// identical), and every truncation or single-byte corruption refused with a clear Error.

import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { Command, Outcome, TransferCmd } from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { decodeSnapshot, encodeSnapshot, stateDigest } from './snapshot-codec.js';
import { applyBatch, createShardState, type ShardState } from './state-machine.js';

function tx(id: string, from: string, to: string, amount: bigint, pending = false,
  timeoutSeconds: number | null = null): TransferCmd {
  return { op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'USD', description: id === 'd' ? 'with "quotes"' : null, paymentTypeId: null,
    pending, timeoutSeconds };
}

function run(state: ShardState, now: number, cmds: Command[], tenant = 'acme'): Outcome[] {
  const results: Outcome[] = [];
  const entries: JournalEntry[] = [];
  applyBatch(state, cmds.map((cmd) => ({ tenant, cmd })), now, results, entries);
  return results;
}

/** A shard with every kind of record: accounts, posted, pending (timeouts or not), rejected. */
function busyShard(): ShardState {
  const state = createShardState(9, 4);
  const open = (id: string, allowNegative: boolean): Command =>
    ({ op: 'createAccount', id, currencyCode: 'USD', allowNegative, metadata: '{"n":"ü"}' });
  run(state, 10, [open('fund', true), open('a', false), open('b', false)]);
  run(state, 10, [open('fund', true)], 'zeta');
  run(state, 20, [tx('p', 'fund', 'a', 500n), tx('d', 'a', 'b', 5n), tx('r', 'b', 'a', 9999n)]);
  run(state, 30, [tx('h1', 'a', 'b', 50n, true, 10), tx('h2', 'a', 'b', 70n, true, 3),
    tx('h3', 'a', 'b', 20n, true), { op: 'post', id: 'h3', amountMinor: 5n },
    tx('h4', 'a', 'b', 1n, true, 100), { op: 'void', id: 'h4' }]);
  return state;
}

describe('snapshot codec', () => {
  it('encodes the same state to the same bytes', () => {
    const bytes = Buffer.from(encodeSnapshot(busyShard()));
    expect(bytes).toEqual(Buffer.from(encodeSnapshot(busyShard())));
    expect(stateDigest(busyShard())).toMatch(/^[0-9a-f]{64}$/);
  });

  it('round-trips to a state that behaves identically afterwards', () => {
    const live = busyShard();
    const copy = decodeSnapshot(encodeSnapshot(live));
    checkInvariants(copy);
    expect(stateDigest(copy)).toBe(stateDigest(live));
    expect(copy).toMatchObject({ shard: 9, epoch: 4, sequence: live.sequence, time: live.time });
    const next: Command[] = [tx('p', 'fund', 'a', 500n), tx('r', 'b', 'a', 9999n),
      { op: 'post', id: 'h1', amountMinor: null }, { op: 'listEntries', accountId: 'b',
        limit: 50, after: null }, { op: 'getTransaction', id: 'h4' }];
    for (const now of [3_000, 3_031, 20_000]) {
      expect(run(copy, now, next)).toEqual(run(live, now, next));
      expect(stateDigest(copy)).toBe(stateDigest(live));
    }
  });

  it('keeps every account history after a round trip, as the shard grows and rolls back', () => {
    const accounts = ['fund', 'a', 'b'];
    const open = (id: string): Command =>
      ({ op: 'createAccount', id, currencyCode: 'USD', allowNegative: true, metadata: '{}' });
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({ n: fc.nat(60), from: fc.constantFrom(...accounts),
        to: fc.constantFrom(...accounts), pending: fc.boolean() })
        .map((x) => tx(`x${x.n}`, x.from, x.to, 3n, x.pending)),
      fc.nat(60).map((n): Command => ({ op: 'post', id: `x${n}`, amountMinor: null })),
      fc.nat(60).map((n): Command => ({ op: 'void', id: `x${n}` })),
      fc.record({ n: fc.nat(60), atomic: fc.boolean() }).map(({ n, atomic }): Command =>
        ({ op: 'transferBatch', atomic, transactions: [tx(`y${n}`, 'fund', 'a', 1n),
          tx(`y${n + 1}`, 'a', 'b', 1n), tx(`y${n + 2}`, 'b', 'nobody', 1n)] })),
      fc.constantFrom('c', 'd').map(open));
    const batches = fc.array(fc.array(command, { minLength: 1, maxLength: 10 }),
      { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(batches, batches, (before, after) => {
      const live = createShardState(1, 1);
      run(live, 1, accounts.map(open));
      before.forEach((cmds, k) => run(live, 2 + k, cmds));
      const copy = decodeSnapshot(encodeSnapshot(live));
      after.forEach((cmds, k) => {
        expect(run(copy, 100 + k, cmds)).toEqual(run(live, 100 + k, cmds));
      });
      checkInvariants(copy);
      const book = live.tenants.get('acme');
      for (const account of book?.accountList ?? []) {
        const restored = copy.tenants.get('acme')?.accounts.get(account.id);
        expect(restored?.history).toEqual(account.history);
      }
      expect(stateDigest(copy)).toBe(stateDigest(live));
    }), { numRuns: 200 });
  });

  it('refuses every truncation and every single-byte corruption', () => {
    const bytes = encodeSnapshot(busyShard());
    for (let end = 0; end < bytes.length; end++) {
      expect(() => decodeSnapshot(bytes.subarray(0, end))).toThrow(/^snapshot: /);
    }
    fc.assert(fc.property(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
      const bad = Uint8Array.from(bytes);
      bad[i] = (bad[i] ?? 0) ^ x;
      expect(() => decodeSnapshot(bad)).toThrow(/^snapshot: /);
    }));
  });

  it('names the item and field of a damaged extra, even with a valid checksum', () => {
    const bytes = Buffer.from(encodeSnapshot(busyShard()));
    const at = bytes.indexOf(Buffer.from('with "quotes"')) - 4; // its u32 length
    expect(bytes.readUInt32LE(at)).toBe('with "quotes"'.length);
    bytes.writeUInt32LE(1_000_000, at);
    const end = bytes.length - 32;
    createHash('sha256').update(bytes.subarray(0, end)).digest().copy(bytes, end);
    expect(() => decodeSnapshot(bytes))
      .toThrow(/^snapshot: \S*extras\[\d+\]\.description: truncated \(1000000 bytes wanted\)$/);
  });

  it('finds every account after a round trip, ASCII ids or not', () => {
    const live = busyShard();
    run(live, 40, ['caf\u00e9', '\u20ac', 'x'].map((id): Command =>
      ({ op: 'createAccount', id, currencyCode: 'EUR', allowNegative: false, metadata: '{}' })),
    'wide');
    const copy = decodeSnapshot(encodeSnapshot(live));
    for (const [tenant, book] of live.tenants) {
      for (const a of book.accounts.values()) {
        expect(copy.tenants.get(tenant)?.accounts.get(a.id)?.index).toBe(a.index);
      }
    }
    expect(copy.tenants.get('wide')?.accounts.get('\u20ac')?.id).toBe('\u20ac');
    expect(copy.tenants.get('acme')?.accounts.has('nobody')).toBe(false);
  });

  it('names a repeated account id (the byte load refuses it, the one-by-one path names it)', () => {
    const bytes = Buffer.from(encodeSnapshot(busyShard()));
    const at = bytes.indexOf(Buffer.from('fundab')); // acme's account id column
    expect(at).toBeGreaterThan(0);
    bytes.write('a', at + 5, 'latin1'); // 'b' becomes a second 'a'
    expect(() => decodeSnapshot(bytes, 'store-verified')).toThrow(/accounts\[2\] repeats an id/);
  });

  it('refuses bytes that are not a snapshot', () => {
    expect(() => decodeSnapshot(new Uint8Array(100))).toThrow(/bad magic/);
    expect(() => decodeSnapshot(new Uint8Array(3))).toThrow(/too short/);
    expect(() => decodeSnapshot(new Uint8Array(100), 'store-verified')).toThrow(/bad magic/);
  });

  it('leaves the trailer to the store for store-verified bytes, and checks all the rest', () => {
    const live = busyShard();
    const bytes = Uint8Array.from(encodeSnapshot(live));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 1; // the trailer only
    expect(() => decodeSnapshot(bytes)).toThrow(/checksum mismatch/);
    expect(stateDigest(decodeSnapshot(bytes, 'store-verified'))).toBe(stateDigest(live));
    for (let end = 0; end < bytes.length - 32; end++) {
      expect(() => decodeSnapshot(bytes.subarray(0, end), 'store-verified'))
        .toThrow(/^snapshot: /);
    }
  });
});
