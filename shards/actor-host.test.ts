import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import { FileJournal } from '../persistence/journal-file.js';
import { decodeReplies } from '../protocol/reply-codec.js';
import { encodeEnvelopes } from '../protocol/envelope-codec.js';
import type { JournalSink, SnapshotStore } from '../protocol/storage.js';
import type { Command, Envelope, Outcome, TransferCmd } from '../protocol/types.js';
import { sharingBalancer, startActorHost, taskSize } from './actor-host.js';
import { ActorWorker, type BatchReply, type StatusReply } from './actor-worker.js';

type Workers = Parameters<ReturnType<typeof sharingBalancer>>[1];

/** Just the two fields a balancer reads, as piscina reports them. */
function worker(currentUsage: number, isRunningAbortableTask = false): Workers[number] {
  return { currentUsage, isRunningAbortableTask } as Workers[number];
}

describe('sharingBalancer', () => {
  const pick = sharingBalancer(10);
  const task = {} as Parameters<typeof pick>[0];

  it('gives a task to a worker already running one abortable task (usage Infinity)', () => {
    const busy = worker(Number.POSITIVE_INFINITY, true);
    expect(pick(task, [busy])).toBe(busy);
  });

  it('takes the least busy worker and none at the limit', () => {
    const a = worker(7);
    const b = worker(3);
    expect(pick(task, [a, b])).toBe(b);
    expect(pick(task, [worker(10), worker(12)])).toBeNull();
  });
});

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('ActorHost pipelining', () => {
  it('applies later tasks while an earlier group commits: groups span several tasks', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'ledger-host-'));
    dirs.push(dataDir);
    const groups: number[] = [];
    const host = await startActorHost({
      workerUrl: new URL('../src/shard-worker.ts', import.meta.url),
      storage: { kind: 'file', dataDir }, shardCount: 1, workers: 1, tickMs: 0,
      // so many tasks may be in flight that commands never wait in the host to share a task
      maxInflightTasks: 1024,
      onGroupCommit: (rows) => groups.push(rows),
    });
    try {
      // One command per event-loop turn: the host sends each as a task of its own. A worker
      // that took one task at a time would commit each alone (one row per group).
      const replies: Array<Promise<Outcome>> = [];
      for (let i = 0; i < 300; i++) {
        const cmd: Command = { op: 'createAccount', id: `a${i}`, currencyCode: 'EUR',
          allowNegative: false, metadata: '{}' };
        replies.push(new Promise((resolve) => host.submit('t', cmd, resolve)));
        await nextTurn();
      }
      const outcomes = await Promise.all(replies);
      expect(outcomes.filter((o) => !o.ok)).toEqual([]);
      expect(groups.reduce((a, b) => a + b, 0)).toBe(300);
      expect(Math.max(...groups)).toBeGreaterThan(1);
    } finally {
      await host.close();
    }
  });
});

function transfer(id: string): TransferCmd {
  return { op: 'transfer', id, fromAccountId: 'a', toAccountId: 'b', amountMinor: 1n,
    currencyCode: 'EUR', description: null, paymentTypeId: null, pending: false,
    timeoutSeconds: null };
}

function batchOf(n: number): Envelope {
  const transactions = Array.from({ length: n }, (_, i) => transfer(`b${n}-${i}`));
  return { tenant: 't', cmd: { op: 'transferBatch', transactions, atomic: false } };
}

describe('taskSize', () => {
  const single: Envelope = { tenant: 't', cmd: transfer('x') };

  it('bounds a task by commands and by the journal entries they may append', () => {
    expect(taskSize([single, single, single], 2, 100)).toBe(2);
    expect(taskSize([batchOf(5), batchOf(5), batchOf(5)], 100, 10)).toBe(2);
    expect(taskSize([batchOf(5), single, batchOf(5)], 100, 10)).toBe(2);
    expect(taskSize([single, single], 100, 100)).toBe(2);
  });

  it('always takes one command, even one larger than a task', () => {
    expect(taskSize([batchOf(20), single], 100, 10)).toBe(1);
  });
});

describe('ActorWorker journal bound', () => {
  it('refuses, applying nothing, a batch that would not fit beside those committing', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'ledger-worker-'));
    dirs.push(dataDir);
    // The first commits pass; then each waits until released, so entries pile up.
    const journal = new FileJournal(dataDir);
    let gate: Promise<void> | null = null;
    let release = (): void => undefined;
    const commit: JournalSink['commit'] = async (entries) => {
      if (gate !== null) await gate;
      return journal.commit(entries);
    };
    const gated = new Proxy(journal, { get: (target, key) => {
      if (key === 'commit') return commit;
      const value: unknown = Reflect.get(target, key);
      return typeof value === 'function' ? value.bind(target) : value;
    } });
    const none: SnapshotStore = {
      save: async () => undefined, loadNewest: async () => null, close: async () => undefined,
    };
    const worker = new ActorWorker({ workerIndex: 0, shards: [0], epoch: 1, snapshotEvery: 0,
      snapshotSeconds: 0, maxPendingRows: 10, verify: true, tickMs: 0 },
    { journal: gated, snapshots: none });
    await worker.start();
    const run = async (envelopes: Envelope[]): Promise<Outcome[]> => {
      const reply = await worker.handle({ kind: 'batch', now: 1_700_000_000_000,
        shards: Uint16Array.from(envelopes.map(() => 0)),
        envelopes: encodeEnvelopes(envelopes) }) as BatchReply;
      return decodeReplies(reply.outcomes, envelopes);
    };
    const account = (id: string): Envelope => ({ tenant: 't', cmd: { op: 'createAccount', id,
      currencyCode: 'EUR', allowNegative: true, metadata: '{}' } });
    expect((await run([account('a'), account('b')])).every((o) => o.ok)).toBe(true);
    gate = new Promise((resolve) => (release = resolve));
    const first = run([batchOf(6)]); // 6 entries wait for the gate
    const second = await run([batchOf(5)]); // 6 + 5 > 10: refused at once
    expect(second.map((o) => (o.ok ? 'ok' : o.error.code))).toEqual(['overloaded']);
    release();
    gate = null;
    const done = await first;
    expect(done.every((o) => o.ok)).toBe(true);
    const third = await run([batchOf(5)]); // the journal has room again
    expect(third.every((o) => o.ok)).toBe(true);
    const status = await worker.handle({ kind: 'status' }) as StatusReply;
    // accounts 2 + 6 + 5: nothing of the refused batch was applied
    expect(status.shards[0]?.lastSequence).toBe(13);
    expect(status.shards[0]?.durableSequence).toBe(13);
    await worker.handle({ kind: 'shutdown' });
  });
});
