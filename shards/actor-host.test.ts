import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { Command, Outcome } from '../protocol/types.js';
import { sharingBalancer, startActorHost } from './actor-host.js';

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
