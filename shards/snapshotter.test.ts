// Snapshotter: encodes in slices while the shard keeps changing, stores only once the group
// holding the snapshot's sequence is durable (with the journal head read at that moment), and
// stores nothing when that head is not the snapshot's sequence.

import { describe, expect, it } from 'vitest';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead, Snapshot, SnapshotStore } from '../protocol/storage.js';
import type { Envelope, Outcome } from '../protocol/types.js';
import { decodeSnapshot, stateDigest } from './snapshot-codec.js';
import { Snapshotter } from './snapshotter.js';
import { applyBatch, createShardState, type ShardState } from './state-machine.js';

function memoryStore(): SnapshotStore & { saved: Snapshot[] } {
  const saved: Snapshot[] = [];
  // A copy: the Snapshotter writes its next snapshot into the memory of the one saved.
  return { saved, save: async (s) => void saved.push({ ...s, state: Uint8Array.from(s.state) }),
    loadNewest: async () => null,
    close: async () => undefined };
}

function grown(accounts: number): ShardState {
  const state = createShardState(3, 2);
  const envelopes: Envelope[] = [];
  for (let i = 0; i < accounts; i++) {
    envelopes.push({ tenant: `t${i % 7}`, cmd: { op: 'createAccount', id: `a${i}`,
      currencyCode: 'EUR', allowNegative: true, metadata: '{}' } });
  }
  pay(state, envelopes);
  return state;
}

function pay(state: ShardState, envelopes: Envelope[]): void {
  const results: Outcome[] = [];
  const entries: JournalEntry[] = [];
  applyBatch(state, envelopes, 1_700_000_000_000 + state.sequence, results, entries);
}

function payments(n: number, from: number): Envelope[] {
  return Array.from({ length: n }, (_, k) => ({ tenant: `t${k % 7}`, cmd: {
    op: 'transfer' as const, id: `p${from + k}`, fromAccountId: `a${k % 7}`,
    toAccountId: `a${(k % 7) + 7}`, amountMinor: 5n, currencyCode: 'EUR', description: null,
    paymentTypeId: null, pending: false, timeoutSeconds: null } }));
}

describe('Snapshotter', () => {
  it('stores the state at its sequence once durable, while payments continue', async () => {
    const state = grown(20_000);
    const store = memoryStore();
    const hash = new Uint8Array(32).fill(9);
    let head: ChainHead = { sequence: 0, hash };
    const snapshotter = new Snapshotter({ store, sliceMs: 1, head: () => head });
    const sequence = state.sequence;
    const expected = stateDigest(state);
    let commit = (): void => undefined;
    const durable = new Promise<void>((resolve) => (commit = resolve));
    const done = snapshotter.start(state, durable);
    expect(snapshotter.busy && !snapshotter.ready).toBe(true);
    let turns = 0;
    while (snapshotter.busy) {
      if (turns === 3) {
        head = { sequence, hash }; // the group ending at the snapshot's sequence is durable
        commit();
      }
      if (turns === 4) head = { sequence: sequence + 50, hash: new Uint8Array(32) };
      pay(state, payments(50, turns++ * 50));
      await new Promise((r) => setImmediate(r));
    }
    await done;
    expect(snapshotter.lastOutcome).toBe('saved');
    expect(turns).toBeGreaterThan(4); // it was sliced, and payments went on meanwhile
    const [snap] = store.saved;
    expect(snap?.head).toEqual({ sequence, hash });
    expect(stateDigest(decodeSnapshot(snap?.state ?? new Uint8Array()))).toBe(expected);
    expect(snapshotter.pauseStats().slices).toBeGreaterThan(4);
  });

  it('stores nothing when the durable head is not the snapshot sequence', async () => {
    const state = grown(10);
    const store = memoryStore();
    const head = { sequence: state.sequence + 1, hash: new Uint8Array(32) };
    const snapshotter = new Snapshotter({ store, sliceMs: 2, head: () => head });
    await snapshotter.start(state, Promise.resolve());
    expect(store.saved).toEqual([]);
    expect(snapshotter.lastOutcome).toMatch(/not the snapshot's/);
    const failing = new Snapshotter({ store, sliceMs: 2, head: () => head });
    await failing.start(state, Promise.reject(new Error('fsync failed')));
    expect(store.saved).toEqual([]);
    expect(failing.lastOutcome).toBe('fsync failed');
  });

  it('writes into the memory of the last snapshot stored, never of a failed save', async () => {
    const state = grown(100);
    const memories: ArrayBufferLike[] = [];
    let fail = false;
    const store: SnapshotStore = { loadNewest: async () => null, close: async () => undefined,
      save: async (s) => {
        memories.push(s.state.buffer);
        expect(stateDigest(decodeSnapshot(s.state))).toBe(stateDigest(state));
        if (fail) throw new Error('redis down');
      } };
    const snapshotter = new Snapshotter({ store, sliceMs: 2,
      head: () => ({ sequence: state.sequence, hash: new Uint8Array(32) }) });
    const snapshot = async (): Promise<string> => {
      await snapshotter.start(state, Promise.resolve());
      pay(state, payments(3, state.sequence)); // the next one differs
      return snapshotter.lastOutcome;
    };
    expect(await snapshot()).toBe('saved');
    expect(await snapshot()).toBe('saved');
    expect(memories[1]).toBe(memories[0]);
    fail = true;
    expect(await snapshot()).toBe('redis down');
    fail = false;
    expect(await snapshot()).toBe('saved');
    expect(memories[3]).not.toBe(memories[2]); // the failed save's store may still read it
    expect(await snapshot()).toBe('saved');
    expect(memories[4]).toBe(memories[3]);
  });
});
