import { describe, expect, test } from 'vitest';
import type { JournalEntry } from '../protocol/journal-entry.js';
import { ZERO_HASH } from '../protocol/journal-entry.js';
import type { ChainHead, JournalSink } from '../protocol/storage.js';
import { GroupCommit } from './group-commit.js';

/** A sink whose commits finish only when the test says so. */
class ManualSink implements JournalSink {
  readonly groups: number[][] = [];
  private pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private heads = new Map<number, ChainHead>();
  async open(): Promise<void> {}
  epochOf(): number {
    return 1;
  }
  async replay(_s: number, head: ChainHead): Promise<ChainHead> {
    return head;
  }
  commit(entries: readonly JournalEntry[]): Promise<void> {
    this.groups.push(entries.map((e) => e.sequence));
    return new Promise((resolve, reject) => {
      this.pending.push({
        resolve: () => {
          for (const e of entries) {
            this.heads.set(e.shard, { sequence: e.sequence, hash: ZERO_HASH });
          }
          resolve();
        },
        reject,
      });
    });
  }
  head(shard: number): ChainHead {
    return this.heads.get(shard) ?? { sequence: 0, hash: ZERO_HASH };
  }
  async close(): Promise<void> {}
  finishNext(): void {
    this.pending.shift()?.resolve();
  }
  failNext(): void {
    this.pending.shift()?.reject(new Error('disk on fire'));
  }
}

function entry(sequence: number, shard = 0): JournalEntry {
  return {
    shard, sequence, epoch: 1, kind: 'post', tenant: 't', id: `x${sequence}`,
    debitAccountId: 'a', creditAccountId: 'b', amountMinor: 1n, currencyCode: 'USD',
    time: 0, detail: '',
  };
}

const turn = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('group commit', () => {
  test('appends of one turn form one group and the next group fills while it flushes', async () => {
    const sink = new ManualSink();
    const gc = new GroupCommit(sink, 1000);
    const a = gc.append([entry(1)]);
    const b = gc.append([entry(2)]);
    await turn();
    expect(sink.groups).toEqual([[1, 2]]);
    const c = gc.append([entry(3)]);
    const d = gc.append([entry(4)]);
    await turn();
    expect(sink.groups).toEqual([[1, 2]]); // one commit in flight at a time
    let cDone = false;
    void c.then(() => (cDone = true));
    sink.finishNext();
    await Promise.all([a, b]);
    await turn();
    expect(cDone).toBe(false);
    expect(sink.groups).toEqual([[1, 2], [3, 4]]);
    sink.finishNext();
    await Promise.all([c, d]);
    expect(gc.pendingRows).toBe(0);
  });

  test('a read-only turn waits for the writes appended before it', async () => {
    const sink = new ManualSink();
    const gc = new GroupCommit(sink, 1000);
    void gc.append([entry(1)]);
    let readDone = false;
    void gc.append([]).then(() => (readDone = true));
    await turn();
    await turn();
    expect(readDone).toBe(false);
    sink.finishNext();
    await turn();
    expect(readDone).toBe(true);
    await expect(gc.append([])).resolves.toBeUndefined();
  });

  test('seal ends the group so the next appends go to a later group', async () => {
    const sink = new ManualSink();
    const gc = new GroupCommit(sink, 1000);
    const sealed = gc.append([entry(1)], true);
    void gc.append([entry(2)]);
    await turn();
    expect(sink.groups).toEqual([[1]]);
    sink.finishNext();
    await sealed;
    expect(sink.head(0).sequence).toBe(1);
    await turn();
    expect(sink.groups).toEqual([[1], [2]]);
    sink.finishNext();
  });

  test('a seal with no entries ends the open group at what it holds (timer snapshots)',
    async () => {
      const sink = new ManualSink();
      const gc = new GroupCommit(sink, 1000);
      void gc.append([entry(1)]);
      const sealed = gc.append([], true);
      void gc.append([entry(2)]);
      await turn();
      expect(sink.groups).toEqual([[1]]);
      sink.finishNext();
      await sealed;
      expect(sink.head(0).sequence).toBe(1);
      await turn();
      expect(sink.groups).toEqual([[1], [2]]);
      sink.finishNext();
      await gc.drain();
      const idle = gc.append([], true); // nothing open: the last group's promise, no new group
      await idle;
      expect(sink.groups).toEqual([[1], [2]]);
    });

  test('a failed commit fails closed: waiting and later appends reject', async () => {
    const sink = new ManualSink();
    const gc = new GroupCommit(sink, 1000);
    const first = gc.append([entry(1)]);
    await turn();
    const second = gc.append([entry(2)]);
    sink.failNext();
    await expect(first).rejects.toThrow('disk on fire');
    await expect(second).rejects.toThrow('disk on fire');
    await expect(gc.append([entry(3)])).rejects.toThrow('disk on fire');
    expect(gc.failure?.message).toBe('disk on fire');
  });

  test('refuses to buffer beyond its row bound', () => {
    const gc = new GroupCommit(new ManualSink(), 2);
    void gc.append([entry(1), entry(2)]);
    expect(() => gc.append([entry(3)])).toThrow(/rows waiting/);
  });
});
