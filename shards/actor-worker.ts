// The body of one worker thread: hosts many shard actors, recovers them from snapshot +
// journal, applies each batch serially (no locks, no awaits inside apply) and answers only
// after the batch's journal group is durable. Storage is injected; no network I/O here.

import { errorRecord } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import { ZERO_HASH } from '../protocol/journal-entry.js';
import type { JournalSink, Snapshot, SnapshotStore } from '../protocol/storage.js';
import { encodeReplies } from '../protocol/reply-codec.js';
import { decodeEnvelopes } from '../protocol/envelope-codec.js';
import type { Envelope, Outcome } from '../protocol/types.js';
import { GroupCommit } from './group-commit.js';
import { checkInvariants } from './invariants.js';
import type { TenantBook } from './ledger-book.js';
import { decodeSnapshot } from './snapshot-codec.js';
import type { BookColumns } from './snapshot-writer.js';
import { SNAPSHOT_SLICE_MS, Snapshotter } from './snapshotter.js';
import {
  applyBatch, applyEntry, createShardState, maxEntriesOf, type ShardState,
} from './state-machine.js';

export interface WorkerConfig {
  workerIndex: number;
  shards: number[];
  epoch: number;
  /** take a snapshot of a shard after this many new entries (0: never) */
  snapshotEvery: number;
  /** ... or this many seconds after the shard's last one, if it has new entries (0: never) */
  snapshotSeconds: number;
  /** bound on rows waiting for commit; the host's in-flight bound keeps us below it */
  maxPendingRows: number;
  /** check double entry after every batch (tests, LEDGER_VERIFY=1) */
  verify: boolean;
  /** how often pending timeouts are checked without traffic, in ms */
  tickMs: number;
}

export interface Storage {
  journal: JournalSink;
  snapshots: SnapshotStore;
}

export type WorkerTask =
  | { kind: 'batch'; now: number; shards: Uint16Array; envelopes: Uint8Array }
  | { kind: 'status' }
  | { kind: 'shutdown' }
  /** host one more shard, at an epoch the shard directory claimed for this pod */
  | { kind: 'acquire'; shard: number; epoch: number }
  /** stop hosting a shard once its commits are durable; `snapshot`: save one first */
  | { kind: 'release'; shard: number; snapshot: boolean };

/**
 * A journal that can take and give up shards one at a time (PostgreSQL). Multi-pod operation
 * needs it; the embedded journal is opened once for every shard and never hands one over.
 */
export interface ShardJournal extends JournalSink {
  adopt(shard: number, epoch: number): Promise<void>;
  forget(shard: number): void;
}

function isShardJournal(journal: JournalSink): journal is ShardJournal {
  const j = journal as Partial<ShardJournal>;
  return typeof j.adopt === 'function' && typeof j.forget === 'function';
}

export interface BatchReply {
  /** reply-codec bytes: decoded with the envelopes the host sent */
  outcomes: Uint8Array;
  /** group commits finished since the last reply: [rows, seconds, rows, seconds, ...] */
  commits: number[];
  /** entries applied but not yet durable in this worker */
  lag: number;
}

export interface ShardStatus {
  shard: number;
  epoch: number;
  lastSequence: number;
  durableSequence: number;
  /** acquire only: time to check the claim and read the head, and to recover the actor */
  adoptMs?: number;
  recoverMs?: number;
}

export interface StatusReply {
  workerIndex: number;
  shards: ShardStatus[];
}

interface Actor {
  state: ShardState;
  /** sequence of the newest snapshot written or being written */
  snapshotSequence: number;
  /** performance.now() when that snapshot started (or the actor was recovered) */
  snapshotAt: number;
}

/**
 * Newest snapshot + journal tail, or a full replay. `snapshot` is the shard's newest snapshot
 * being fetched: callers start it before opening the journal, so that the fetch (network and
 * the store's own work) runs while this thread reads and verifies the journal's head. Only
 * the journal decides what the snapshot is worth, and it is consulted after both are done.
 */
export async function recoverActor(
  storage: Storage,
  shard: number,
  snapshot: Promise<Snapshot | null> = storage.snapshots.loadNewest(shard),
  /** a Snapshotter's kept columns, to fill from the snapshot (see Snapshotter.columns) */
  columns?: WeakMap<TenantBook, BookColumns>,
): Promise<Actor> {
  const snap = await snapshot;
  if (snap === null) return replayFrom(storage, shard, null);
  try {
    return await replayFrom(storage, shard, snap, columns);
  } catch {
    // A snapshot the journal cannot back (another cluster's keys, a forked or damaged one)
    // means a longer replay, never a shard that cannot start: the journal is the truth.
    return replayFrom(storage, shard, null);
  }
}

async function replayFrom(storage: Storage, shard: number, snap: Snapshot | null,
  columns?: WeakMap<TenantBook, BookColumns>): Promise<Actor> {
  const state = snap ? decodeSnapshot(snap.state, 'store-verified', columns)
    : createShardState(shard, 0);
  const head = snap ? snap.head : { sequence: 0, hash: ZERO_HASH };
  if (state.sequence !== head.sequence) {
    throw new Error(`shard ${shard}: snapshot state at ${state.sequence}, head ${head.sequence}`);
  }
  const journalHead = storage.journal.head(shard);
  if (journalHead.sequence < head.sequence) {
    throw new Error(
      `shard ${shard}: journal ends at ${journalHead.sequence} but snapshot is at ` +
        `${head.sequence}; refusing to serve from a snapshot the journal cannot back`,
    );
  }
  await storage.journal.replay(shard, head, (entry) => applyEntry(state, entry));
  state.epoch = storage.journal.epochOf(shard);
  return { state, snapshotSequence: head.sequence, snapshotAt: performance.now() };
}

export class ActorWorker {
  private readonly actors = new Map<number, Actor>();
  private readonly group: GroupCommit;
  private commits: number[] = [];
  /** encodes snapshots in slices between batches (see snapshotter.ts) */
  private readonly snapshotter: Snapshotter;
  /** shards due a snapshot in the batch being applied (bounded by the shards hosted) */
  private snapshotDueNow: Actor[] = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly config: WorkerConfig,
    private readonly storage: Storage,
  ) {
    this.snapshotter = new Snapshotter({ store: storage.snapshots, sliceMs: SNAPSHOT_SLICE_MS,
      head: (shard) => storage.journal.head(shard) });
    this.group = new GroupCommit(storage.journal, config.maxPendingRows, (s) => {
      this.commits.push(s.rows, s.seconds);
      // bounded: drained into every batch reply; without traffic keep only the last 512
      if (this.commits.length > 1024) this.commits.splice(0, this.commits.length - 1024);
    });
  }

  async start(): Promise<void> {
    const { shards } = this.config;
    const load = (i: number): Promise<Snapshot | null> | undefined =>
      i < shards.length ? this.storage.snapshots.loadNewest(shards[i] as number) : undefined;
    // One snapshot fetched ahead: the first while the journal opens, each next one while the
    // one before it decodes and replays (at most two held at once).
    let next = load(0);
    await this.storage.journal.open(shards, this.config.epoch);
    for (let i = 0; i < shards.length; i++) {
      const current = next;
      next = load(i + 1);
      this.actors.set(shards[i] as number,
        await recoverActor(this.storage, shards[i] as number, current, this.snapshotter.columns));
    }
    if (this.config.tickMs > 0) {
      this.timer = setInterval(() => this.tick(), this.config.tickMs);
      this.timer.unref();
    }
  }

  handle(task: WorkerTask): Promise<unknown> {
    switch (task.kind) {
      case 'batch':
        return this.batch(task.now, task.shards, task.envelopes);
      case 'status':
        return this.group.drain().then(() => this.status());
      case 'shutdown':
        return this.shutdown();
      case 'acquire':
        return this.acquire(task.shard, task.epoch);
      case 'release':
        return this.release(task.shard, task.snapshot);
    }
  }

  private async acquire(shard: number, epoch: number): Promise<ShardStatus> {
    const journal = this.storage.journal;
    if (!isShardJournal(journal)) throw new Error('this journal cannot acquire single shards');
    const held = this.actors.get(shard);
    if (held !== undefined) {
      if (held.state.epoch === epoch) return this.shardStatus(shard, held);
      throw new Error(`worker ${this.config.workerIndex} already hosts shard ${shard}`);
    }
    if (this.group.failure) throw this.group.failure;
    const t0 = performance.now();
    const snapshot = this.storage.snapshots.loadNewest(shard); // fetched while adopting
    await journal.adopt(shard, epoch);
    const t1 = performance.now();
    try {
      this.actors.set(shard,
        await recoverActor(this.storage, shard, snapshot, this.snapshotter.columns));
    } catch (err) {
      journal.forget(shard);
      throw err;
    }
    const timing = { adoptMs: t1 - t0, recoverMs: performance.now() - t1 };
    return { ...this.shardStatus(shard, this.actors.get(shard) as Actor), ...timing };
  }

  /**
   * The host sends no more commands for the shard; the batches before this task were applied
   * when they arrived (apply is synchronous), so draining the group makes all of them durable.
   * The actor leaves the map first so that no timer turn appends for it meanwhile.
   */
  private async release(shard: number, snapshot: boolean): Promise<ShardStatus> {
    const journal = this.storage.journal;
    const actor = this.actors.get(shard);
    if (actor === undefined || !isShardJournal(journal)) {
      return { shard, epoch: 0, lastSequence: 0, durableSequence: 0 };
    }
    this.actors.delete(shard);
    await this.group.drain().catch((err: unknown) => this.failClosed(err));
    const status = this.shardStatus(shard, actor);
    if (snapshot && actor.state.sequence > actor.snapshotSequence) {
      // Sliced like any snapshot: the other shards of this worker keep serving meanwhile. The
      // actor is out of the map, so its state is at the durable head; a failed snapshot means a
      // longer replay at the target, never wrong data.
      while (this.snapshotter.busy) await this.snapshotter.idle();
      await this.snapshotter.start(actor.state, Promise.resolve());
    }
    journal.forget(shard);
    return status;
  }

  private batch(now: number, shards: Uint16Array, bytes: Uint8Array): Promise<unknown> {
    const envelopes = decodeEnvelopes(bytes);
    if (!this.hasRoomFor(envelopes)) return Promise.resolve(this.refuse(envelopes));
    const results: Outcome[] = new Array<Outcome>(envelopes.length);
    const entries: JournalEntry[] = [];
    const due = this.applyByShard(now, shards, envelopes, results, entries);
    const durable = this.group.append(entries, due.length > 0);
    for (const actor of due) this.snapshotAfter(actor, durable);
    // Encoded now, sent once durable: the commands and outcome objects die young instead of
    // being kept (and copied by the GC) while the group commits.
    const outcomes = encodeReplies(envelopes, results);
    return durable.then(
      () => this.reply(outcomes),
      (err: unknown) => this.failClosed(err),
    );
  }

  /**
   * Whether the entries these commands may append fit beside those still committing. The host
   * bounds its tasks so that they do; a batch that did not would be applied and then have no
   * place in the journal, so it is refused before anything is applied.
   */
  private hasRoomFor(envelopes: readonly Envelope[]): boolean {
    let rows = this.group.pendingRows;
    for (const env of envelopes) rows += maxEntriesOf(env.cmd);
    return rows <= this.config.maxPendingRows;
  }

  /** Every command answered 'overloaded' (retryable), nothing applied. */
  private refuse(envelopes: readonly Envelope[]): BatchReply {
    const refused: Outcome = { ok: false, error: errorRecord('overloaded') };
    return this.reply(encodeReplies(envelopes, envelopes.map(() => refused)));
  }

  /** Applies each shard's commands in arrival order; returns the actors due a snapshot. */
  private applyByShard(
    now: number,
    shards: Uint16Array,
    envelopes: Envelope[],
    results: Outcome[],
    entries: JournalEntry[],
  ): Actor[] {
    const byShard = groupIndexesByShard(shards, envelopes.length);
    const due: Actor[] = [];
    const scratchEnv: Envelope[] = [];
    const scratchOut: Outcome[] = [];
    for (const [shard, indexes] of byShard) {
      const actor = this.actors.get(shard);
      if (!actor) {
        // Released or not yet acquired (a hand-off raced the host's routing): not applied.
        const refused: Outcome = { ok: false, error: errorRecord('shard_unavailable') };
        for (const i of indexes) results[i] = refused;
        continue;
      }
      scratchEnv.length = 0;
      scratchOut.length = 0;
      for (const i of indexes) scratchEnv.push(envelopes[i] as Envelope);
      applyBatch(actor.state, scratchEnv, now, scratchOut, entries);
      for (let k = 0; k < indexes.length; k++) {
        results[indexes[k] as number] = scratchOut[k] as Outcome;
      }
      if (this.config.verify) checkInvariants(actor.state);
      if (this.snapshotDue(actor)) due.push(actor);
    }
    return due;
  }

  private reply(outcomes: Uint8Array): BatchReply {
    const commits = this.commits;
    this.commits = [];
    return { outcomes, commits, lag: this.group.pendingRows };
  }

  private snapshotDue(actor: Actor): boolean {
    const { snapshotEvery: every, snapshotSeconds: seconds } = this.config;
    const since = actor.state.sequence - actor.snapshotSequence;
    if (since <= 0 || !this.snapshotter.ready) return false;
    return (every > 0 && since >= every) ||
      (seconds > 0 && performance.now() - actor.snapshotAt >= seconds * 1000);
  }

  /**
   * Snapshots a shard as it is now, at this sequence, in slices between later batches, and
   * stores it only once the group holding that sequence is durable (a snapshot must never
   * contain what can be lost). `durable` is that group's commit, sealed at this sequence.
   * One snapshot at a time: of the shards due in this batch, the one furthest behind its last
   * snapshot goes (chosen once the batch's calls are in), so no shard starves the others.
   */
  private snapshotAfter(actor: Actor, durable: Promise<void>): void {
    if (this.snapshotDueNow.push(actor) > 1) return;
    queueMicrotask(() => {
      const due = this.snapshotDueNow;
      this.snapshotDueNow = [];
      const behind = (a: Actor): number => a.state.sequence - a.snapshotSequence;
      const chosen = due.reduce((a, b) => (behind(b) > behind(a) ? b : a));
      if (this.snapshotter.busy) return;
      chosen.snapshotSequence = chosen.state.sequence;
      chosen.snapshotAt = performance.now();
      void this.snapshotter.start(chosen.state, durable);
    });
  }

  private tick(): void {
    if (this.group.failure) return;
    const entries: JournalEntry[] = [];
    const results: Outcome[] = [];
    const now = Date.now();
    for (const actor of this.actors.values()) applyBatch(actor.state, [], now, results, entries);
    if (entries.length > 0) this.group.append(entries).catch((err) => this.failClosed(err));
    // The time trigger for shards without traffic: sealed here, like a batch that is due.
    for (const actor of this.actors.values()) {
      if (!this.snapshotDue(actor)) continue;
      const durable = this.group.append([], true);
      durable.catch(() => undefined); // a failure reaches the batches' own promises
      this.snapshotAfter(actor, durable);
    }
  }

  private status(): StatusReply {
    const shards: ShardStatus[] = [];
    for (const [shard, actor] of this.actors) shards.push(this.shardStatus(shard, actor));
    return { workerIndex: this.config.workerIndex, shards };
  }

  private shardStatus(shard: number, actor: Actor): ShardStatus {
    return {
      shard,
      epoch: actor.state.epoch,
      lastSequence: actor.state.sequence,
      durableSequence: this.storage.journal.head(shard).sequence,
    };
  }

  private async shutdown(): Promise<StatusReply> {
    if (this.timer) clearInterval(this.timer);
    await this.group.drain();
    await this.snapshotter.idle(); // a snapshot under way is finished and stored, not dropped
    const status = this.status();
    await this.storage.journal.close();
    await this.storage.snapshots.close();
    return status;
  }

  /**
   * A commit failed: memory may now hold entries that are not durable. Fail closed: answer
   * with a retryable error and end this thread so the host starts a fresh one that rebuilds
   * from snapshot + journal. Clients retry with the same ids and get the original result.
   */
  private failClosed(err: unknown): never {
    setImmediate(() => process.exit(1));
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`storage_unavailable: ${message}`);
  }
}

/** Indexes of the batch per shard, in arrival order (one array per touched shard). */
function groupIndexesByShard(shards: Uint16Array, count: number): Map<number, number[]> {
  const byShard = new Map<number, number[]>();
  for (let i = 0; i < count; i++) {
    const shard = shards[i] as number;
    const list = byShard.get(shard);
    if (list) list.push(i);
    else byShard.set(shard, [i]);
  }
  return byShard;
}
