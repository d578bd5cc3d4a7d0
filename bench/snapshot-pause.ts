// Snapshot pause benchmark: a payment loop applies a batch per event-loop turn (as the actor
// does) while the Snapshotter encodes the shard in slices and saves it to Redis. Reports how
// long each slice held the thread (the first snapshot apart: for a shard built by payments it
// builds the column cache the later ones reuse; a shard recovered from a snapshot, measured in
// a fresh thread, takes the cache from it), the loop's longest stalls and its payments/s,
// against the same loop without snapshots and against control slices of plain CPU work, in the
// same run. Asserts nothing.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { PerformanceObserver } from 'node:perf_hooks';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import type { Envelope, Outcome } from '../protocol/types.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { SnapshotStore } from '../protocol/storage.js';
import { decodeSnapshot, stateDigest } from '../shards/snapshot-codec.js';
import { applyBatch, type ShardState } from '../shards/state-machine.js';
import { SNAPSHOT_SLICE_MS, Snapshotter } from '../shards/snapshotter.js';
import { inFreshThread } from './fresh-thread.js';
import { fmtInt, percentile } from './report.js';
import { START_MS, inMemoryShard, transferCmd } from './shard-workload.js';

/** Most transfers applied in one loop turn (one actor batch). */
const PAYMENTS_PER_TURN = 256;
/** Offered load: payments/s the loop applies, paced, so the shard grows alike in every run. */
const PAYMENT_RATE = Number(process.env.PAUSE_PAYMENT_RATE ?? 20_000);
const BASELINE_MS = 3000;
/** The slice the actor worker uses (SNAPSHOT_SLICE_MS), or PAUSE_SLICE_MS. */
const SLICE_MS = Number(process.env.PAUSE_SLICE_MS ?? SNAPSHOT_SLICE_MS);

interface LoopStats {
  turns: number;
  paymentsPerSecond: number;
  gapsMs: number[];
}

/** Applies a batch every turn until stopped; records the stalls between its turns. */
class PaymentLoop {
  private next = 0;
  private lastEnd = 0;
  private started = 0;
  private gaps: number[] = [];
  private turns = 0;
  private applied = 0;
  private running = false;
  private stopped: (() => void) | null = null;

  constructor(private readonly state: ShardState, private readonly accounts: number) {}

  start(): void {
    this.gaps = [];
    this.turns = 0;
    this.applied = 0;
    this.running = true;
    this.started = this.lastEnd = performance.now();
    setImmediate(() => this.turn());
  }

  /** Forget the stall in progress (the bench itself held the thread). */
  resync(): void {
    this.lastEnd = performance.now();
  }

  stop(): Promise<LoopStats> {
    this.running = false;
    return new Promise((resolve) => {
      this.stopped = () => resolve({ turns: this.turns, gapsMs: this.gaps,
        paymentsPerSecond: (this.applied * 1000) / (performance.now() - this.started) });
    });
  }

  /** One event-loop turn: the payments now due (at most one batch), then the next turn. */
  private turn(): void {
    if (!this.running) {
      this.stopped?.();
      return;
    }
    const begin = performance.now();
    this.gaps.push(begin - this.lastEnd);
    const due = Math.floor(((begin - this.started) / 1000) * PAYMENT_RATE) - this.applied;
    const batch: Envelope[] = [];
    for (let i = 0; i < Math.min(due, PAYMENTS_PER_TURN); i++) {
      batch.push(transferCmd(this.next++, this.accounts, 'p'));
    }
    if (batch.length > 0) {
      const results: Outcome[] = [];
      const entries: JournalEntry[] = [];
      applyBatch(this.state, batch, START_MS + this.state.sequence, results, entries);
      this.applied += batch.length;
    }
    this.turns++;
    this.lastEnd = performance.now();
    setImmediate(() => this.turn());
  }
}

/**
 * Preemptions of this thread so far (Linux), or -1. This is a shared 2-core box: a slice the
 * kernel preempted is long by the other processes' doing, so those are also counted apart.
 */
function preemptions(): number {
  try {
    const status = readFileSync('/proc/thread-self/status', 'utf8');
    return Number(/nonvoluntary_ctxt_switches:\s*(\d+)/.exec(status)?.[1] ?? -1);
  } catch {
    return -1; // not Linux: every slice counts as not preempted
  }
}

/** The longest GC pause seen since the last take(), in ms. */
function gcPauses(): { take(): number; stop(): void } {
  let longest = 0;
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) longest = Math.max(longest, e.duration);
  });
  observer.observe({ entryTypes: ['gc'] });
  return {
    take: () => {
      const out = longest;
      longest = 0;
      return out;
    },
    stop: () => observer.disconnect(),
  };
}

let spun = 0;

/**
 * The control: `n` slices of plain CPU work as long as the snapshot's, between the loop's
 * turns as the snapshot's are. Their tail is what any slice of that length suffers on this
 * machine (the kernel preempting the thread for other threads and processes); the snapshot's
 * own share of its tail is what it has beyond this.
 */
function controlSlices(n: number, out: number[]): Promise<void> {
  return new Promise((resolve) => {
    let left = n;
    const slice = (): void => {
      const started = performance.now();
      const deadline = started + SLICE_MS;
      do {
        for (let i = 0; i < 256; i++) spun = (spun * 31 + i) | 0;
      } while (performance.now() < deadline);
      out.push(performance.now() - started);
      if (--left > 0) setImmediate(slice);
      else resolve();
    };
    setImmediate(slice);
  });
}

function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Where the measured shard comes from: grown by payments in this heap (its first snapshot
 * builds the column cache: the case of a shard recovered by a full journal replay), or
 * decoded from its newest snapshot in Redis in a fresh thread, as a pod taking it over does
 * (the cache comes with the snapshot's bytes).
 */
type Origin = 'built' | 'recovered';

interface PauseTask {
  kind: 'pause';
  accounts: number;
  count: number;
  redisUrl: string;
  prefix: string;
}

type PauseRun = Awaited<ReturnType<typeof pauseAt>>;

/**
 * One size: the loop alone for a while (baseline), then `count` snapshots back to back with
 * the loop running, then as many control slices as they had. The first snapshot is checked
 * against the state at its sequence. The snapshots stay under `prefix` in Redis.
 */
async function pauseAt(task: PauseTask, origin: Origin) {
  const { accounts, count, redisUrl, prefix } = task;
  const redis = new RedisSnapshotStore(redisUrl, { keyPrefix: prefix, commandTimeoutMs: 30_000 });
  let firstDigest = ''; // the next snapshot is written into the same memory: hashed now
  let bytes = 0;
  const store: SnapshotStore = { loadNewest: (shard) => redis.loadNewest(shard),
    close: () => redis.close(), save: (s) => {
      if (bytes === 0) {
        bytes = s.state.length;
        firstDigest = sha256Hex(s.state);
        loop.resync(); // the bench held the thread, not the snapshot
      }
      return redis.save(s);
    } };
  const slices: number[] = [];
  const clean: number[] = [];
  let before = 0;
  const snapshotter: Snapshotter = new Snapshotter({ store, sliceMs: SLICE_MS,
    onSliceStart: () => (before = preemptions()),
    onSlice: (ms) => {
      slices.push(ms);
      if (preemptions() === before) clean.push(ms);
    },
    head: () => ({ sequence: state.sequence, hash: new Uint8Array(32) }) });
  const state: ShardState = origin === 'built' ? await inMemoryShard(accounts, accounts)
    : await recovered(redis, snapshotter);
  const gc = gcPauses();
  const loop = new PaymentLoop(state, accounts);
  loop.start();
  await new Promise((r) => setTimeout(r, BASELINE_MS));
  const baseline = await loop.stop();
  const gcBase = gc.take();
  const wallMs: number[] = [];
  const control: number[] = [];
  let firstSlices = 0;
  const expected = stateDigest(state); // the state at the first snapshot's sequence
  loop.start();
  for (let k = 0; k < count; k++) {
    const t0 = performance.now();
    await snapshotter.start(state, Promise.resolve());
    wallMs.push(performance.now() - t0);
    if (snapshotter.lastOutcome !== 'saved') throw new Error(snapshotter.lastOutcome);
    if (k === 0) firstSlices = slices.length;
  }
  const during = await loop.stop();
  const gcDuring = gc.take();
  loop.start();
  await controlSlices(slices.length, control);
  await loop.stop();
  gc.stop();
  await store.close();
  return { origin, accounts, count, slices, firstSlices, clean, control, baseline, during,
    verified: firstDigest === expected, bytes, wallMs, gcBase, gcDuring };
}

/** The shard's newest snapshot, decoded as a pod taking the shard over decodes it. */
async function recovered(redis: RedisSnapshotStore, snapshotter: Snapshotter) {
  const snap = await redis.loadNewest(0);
  if (snap === null) throw new Error('pause bench: no snapshot to recover from');
  return decodeSnapshot(snap.state, 'store-verified', snapshotter.columns);
}

/** pauseAt(task, 'recovered') in a fresh thread: a taking-over pod's heap holds no builder. */
function recoveredInWorker(task: PauseTask): Promise<PauseRun> {
  return inFreshThread<PauseRun>(new URL(import.meta.url), task, 'pause worker');
}

/** "p99/max" of some slice durations, in ms. */
function tail(ms: number[]): string {
  const sorted = [...ms].sort((a, b) => a - b);
  return `${percentile(sorted, 99).toFixed(2)}/${(sorted[sorted.length - 1] ?? 0).toFixed(2)}`;
}

function stallRow(stats: LoopStats): { p99: string; max: string } {
  const gaps = [...stats.gapsMs].sort((a, b) => a - b);
  return { p99: percentile(gaps, 99).toFixed(2), max: (gaps[gaps.length - 1] ?? 0).toFixed(1) };
}

/** Rows for the report: two per shard size (N accounts and N transfers), built and recovered. */
export async function benchSnapshotPause(sizes: number[], redisUrl: string) {
  const rows: Array<Record<string, string | number>> = [];
  for (const accounts of sizes) {
    const count = accounts >= 1_000_000 ? 5 : accounts >= 100_000 ? 10 : 30;
    const prefix = `ledger-bench-pause:${process.pid}:${accounts}:`;
    const task: PauseTask = { kind: 'pause', accounts, count, redisUrl, prefix };
    try {
      rows.push(pauseRow(await pauseAt(task, 'built')));
      rows.push(pauseRow(await recoveredInWorker(task)));
    } finally {
      await dropPrefix(redisUrl, prefix);
    }
  }
  return rows;
}

function pauseRow(r: PauseRun): Record<string, string | number> {
  const sorted = [...r.slices].sort((a, b) => a - b);
  const kept = [...r.clean].sort((a, b) => a - b);
  const control = [...r.control].sort((a, b) => a - b);
  const base = stallRow(r.baseline);
  const during = stallRow(r.during);
  return { accounts: fmtInt(r.accounts),
    shard: r.origin === 'built' ? 'built by payments' : 'recovered from it',
    snapshots: r.count, slices: sorted.length,
    'slice p50 ms': percentile(sorted, 50).toFixed(2),
    'slice p99 ms': percentile(sorted, 99).toFixed(2),
    'slice max ms': (sorted[sorted.length - 1] ?? 0).toFixed(2),
    'not preempted': `${(100 * kept.length / Math.max(1, sorted.length)).toFixed(0)}%`,
    'their p50/p99/max': `${percentile(kept, 50).toFixed(2)}/${tail(kept)}`,
    'first snapshot p99/max': tail(r.slices.slice(0, r.firstSlices)),
    'later p99/max': tail(r.slices.slice(r.firstSlices)),
    'control p50/p99/max': `${percentile(control, 50).toFixed(2)}/${tail(control)}`,
    'stall p99/max ms': `${during.p99}/${during.max}`,
    'base stall p99/max': `${base.p99}/${base.max}`,
    'gc max ms with/base': `${r.gcDuring.toFixed(1)}/${r.gcBase.toFixed(1)}`,
    'pay/s with': fmtInt(r.during.paymentsPerSecond),
    'pay/s base': fmtInt(r.baseline.paymentsPerSecond),
    'snapshot s': (percentile([...r.wallMs].sort((a, b) => a - b), 50) / 1000).toFixed(2),
    MiB: (r.bytes / 2 ** 20).toFixed(1), 'equals state': r.verified ? 'yes' : 'NO' };
}

/** Removes every key under `prefix` (the benchmark's own namespace). */
export async function dropPrefix(redisUrl: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(redisUrl);
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
  await client.quit();
}

if (!isMainThread && (workerData as PauseTask | undefined)?.kind === 'pause') {
  pauseAt(workerData as PauseTask, 'recovered').then((run) => parentPort?.postMessage(run),
    (err: unknown) => {
      throw err; // the parent's 'error' handler reports it
    });
}
