// Group commit: the journal entries of many actor turns become one durable write, and while
// one group is committing the next one fills. Knows nothing about what the entries mean.

import type { JournalEntry } from '../protocol/journal-entry.js';
import type { JournalSink } from '../protocol/storage.js';

export interface GroupCommitStats {
  rows: number;
  seconds: number;
}

/** A group shares one promise: one allocation per group, not per payment or per task. */
class Group {
  readonly entries: JournalEntry[] = [];
  readonly done: Promise<void>;
  private readonly settle = {
    resolve: (): void => undefined,
    reject: (_err: Error): void => undefined,
  };
  constructor() {
    const settle = this.settle;
    this.done = new Promise<void>((resolve, reject) => {
      settle.resolve = resolve;
      settle.reject = reject;
    });
    // A group nobody waits on (timer-driven voids) must not crash the thread on failure:
    // the failure is reported through `failure` and every later append rejects.
    this.done.catch(() => undefined);
  }
  resolve(): void {
    this.settle.resolve();
  }
  reject(err: Error): void {
    this.settle.reject(err);
  }
}

export class GroupCommit {
  /** groups waiting to be written, oldest first; the last one is open for appends */
  private readonly queue: Group[] = [new Group()];
  private flushing: Group | null = null;
  private scheduled = false;
  private failed: Error | null = null;
  /** entries appended but not yet durable (the journal lag) */
  pendingRows = 0;

  constructor(
    private readonly sink: JournalSink,
    private readonly maxRows: number,
    private readonly onCommit: (stats: GroupCommitStats) => void = () => undefined,
  ) {}

  get failure(): Error | null {
    return this.failed;
  }

  /**
   * Resolves when `entries` and everything appended before them are durable. With no entries
   * (a read-only turn) it still waits for earlier writes: reads never see what can be lost.
   * `seal` ends the group after these entries, so that when it resolves the sink's head of
   * each shard is exactly the last entry appended here (what a snapshot needs).
   */
  append(entries: readonly JournalEntry[], seal = false): Promise<void> {
    if (this.failed) return Promise.reject(this.failed);
    const open = this.openGroup();
    if (entries.length === 0) {
      // Sealing what is already appended: the open group ends here (if it holds anything).
      if (seal && open.entries.length > 0) {
        this.queue.push(new Group());
        return open.done;
      }
      return this.lastPromise();
    }
    for (let i = 0; i < entries.length; i++) open.entries.push(entries[i] as JournalEntry);
    this.pendingRows += entries.length;
    if (this.pendingRows > this.maxRows) {
      // The host bounds tasks in flight per worker, so this cannot grow without limit; if
      // it does, that bound is broken and we stop rather than buffer unboundedly.
      throw new Error(`group commit: ${this.pendingRows} rows waiting > ${this.maxRows}`);
    }
    if (seal) this.queue.push(new Group());
    this.schedule();
    return open.done;
  }

  /** Resolves when everything appended so far is durable (used at shutdown). */
  drain(): Promise<void> {
    return this.append([]);
  }

  private openGroup(): Group {
    return this.queue[this.queue.length - 1] as Group;
  }

  private lastPromise(): Promise<void> {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const g = this.queue[i] as Group;
      if (g.entries.length > 0) return g.done;
    }
    return this.flushing ? this.flushing.done : Promise.resolve();
  }

  private schedule(): void {
    if (this.flushing || this.scheduled) return;
    this.scheduled = true;
    // Let every task that arrived in this turn join the group before it is written.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.scheduled = false;
    if (this.flushing || this.failed) return;
    const group = this.queue[0] as Group;
    if (group.entries.length === 0) {
      if (this.queue.length > 1) this.queue.shift();
      return;
    }
    this.queue.shift();
    if (this.queue.length === 0) this.queue.push(new Group());
    this.flushing = group;
    const started = performance.now();
    this.sink.commit(group.entries).then(
      () => this.committed(group, started),
      (err: unknown) => this.fail(group, err),
    );
  }

  private committed(group: Group, started: number): void {
    this.flushing = null;
    this.pendingRows -= group.entries.length;
    this.onCommit({ rows: group.entries.length, seconds: (performance.now() - started) / 1e3 });
    group.resolve();
    if ((this.queue[0] as Group).entries.length > 0) this.flush();
  }

  private fail(group: Group, err: unknown): void {
    this.flushing = null;
    this.failed = err instanceof Error ? err : new Error(String(err));
    group.reject(this.failed);
    for (const g of this.queue) g.reject(this.failed);
  }
}
