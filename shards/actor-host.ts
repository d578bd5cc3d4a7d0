// The main-thread side of the shard actors: routes each command to its shard's worker, sends
// one batch per worker per event-loop turn, and replies only when the worker says durable.
// Never applies ledger rules itself; a full queue is refused with 'overloaded', never grown.

import { Piscina } from 'piscina';
import { errorRecord, type ErrorCode } from '../protocol/errors.js';
import { shardOf } from '../protocol/shard-key.js';
import { decodeReplies } from '../protocol/reply-codec.js';
import { encodeEnvelopes } from '../protocol/envelope-codec.js';
import type { Command, Envelope, Outcome } from '../protocol/types.js';
import type {
  BatchReply,
  ShardStatus,
  StatusReply,
  WorkerConfig,
  WorkerTask,
} from './actor-worker.js';
import type { LedgerPort, Reply } from './ledger-port.js';
import { maxEntriesOf } from './state-machine.js';

export interface ActorHostOptions {
  /** the worker entry file, which wires storage into shards/actor-worker */
  workerUrl: URL;
  /** passed through untouched to the worker entry as workerData.storage */
  storage: unknown;
  shardCount: number;
  workers: number;
  epoch?: number;
  snapshotEvery?: number;
  /** also snapshot a shard with new entries this many seconds after its last one (0: never) */
  snapshotSeconds?: number;
  verify?: boolean;
  /** commands per task crossing to a worker */
  maxTaskItems?: number;
  /**
   * journal entries a task may append at most (a transferBatch counts its transactions): with
   * maxInflightTasks it bounds the entries a worker holds until they commit. A command larger
   * than this still goes, alone.
   */
  maxTaskRows?: number;
  /** tasks in flight per worker: one applying while earlier ones commit */
  maxInflightTasks?: number;
  /**
   * V8 young generation of each worker, in MiB. A batch's commands, outcomes and journal
   * entries live until its group commits; with V8's default (16 MiB semi-spaces) most of them
   * were still alive at a scavenge and got copied. 64 measured best (bench core, batch 8190:
   * about 7% more transfers/s, 5% less CPU per transfer than the default). 0: V8's default.
   */
  workerYoungGenerationMb?: number;
  /** commands waiting per worker before new ones are refused with 'overloaded' */
  maxQueued?: number;
  tickMs?: number;
  onGroupCommit?: (rows: number, seconds: number) => void;
  onWorkerError?: (workerIndex: number, err: Error) => void;
  /**
   * Multi-pod mode: workers start with no shard and host only what acquire() gives them
   * (the journal must be a ShardJournal). Without it every shard is hosted from the start.
   */
  dynamic?: boolean;
  /** dynamic mode: a worker died and its shards are no longer hosted (claim them again) */
  onShardsLost?: (shards: number[]) => void;
}

/** A command taken back from a worker's queue before it was sent (see release()). */
export interface QueuedCommand {
  tenant: string;
  cmd: Command;
  reply: Reply;
}

export interface ReleasedShard {
  status: ShardStatus;
  /** commands that were queued for the shard and never reached the worker */
  queued: QueuedCommand[];
}

/** Each worker isolate's young generation unless configured (MiB). */
export const WORKER_YOUNG_GENERATION_MB = 64;

const DEFAULTS = {
  epoch: 1,
  snapshotEvery: 100_000,
  snapshotSeconds: 300,
  verify: false,
  maxTaskItems: 16_384,
  maxTaskRows: 65_536,
  maxInflightTasks: 8,
  maxQueued: 131_072,
  workerYoungGenerationMb: WORKER_YOUNG_GENERATION_MB,
  tickMs: 1000,
  dynamic: false,
};

type Balancer = NonNullable<NonNullable<ConstructorParameters<typeof Piscina>[0]>['loadBalancer']>;

/**
 * Piscina's default balancer posts a task that carries an AbortSignal (all of ours: see
 * Lane.queued) only to a worker running nothing else, so a worker had one task at a time and
 * waited a round trip between them: the next batch never applied while the last one committed,
 * and at light load commands queued in piscina for tens of milliseconds. Our signal only
 * aborts tasks that no worker took (see workerFailed), so tasks share a worker up to `max`.
 * (Piscina reports the usage of a worker running exactly one abortable task as Infinity.)
 */
export function sharingBalancer(max: number): Balancer {
  return (_task, workers) => {
    let best: (typeof workers)[number] | null = null;
    let bestUsage = max;
    for (const w of workers) {
      const usage = w.isRunningAbortableTask ? 1 : w.currentUsage;
      if (usage < bestUsage) {
        best = w;
        bestUsage = usage;
      }
    }
    return best;
  };
}

/** One worker thread and the commands waiting for it. */
class Lane {
  envelopes: Envelope[] = [];
  shards: number[] = [];
  replies: Reply[] = [];
  inflight = 0;
  ready = false;
  /** entries applied but not yet durable, as of the worker's last reply */
  lag = 0;
  /** aborts the tasks queued for a worker that failed to start (see workerFailed) */
  queued = new AbortController();
  constructor(
    readonly index: number,
    readonly pool: Piscina,
  ) {}

  run<T = unknown>(task: WorkerTask): Promise<T> {
    // A batch's buffers are its own (encodeEnvelopes, Uint16Array.from): moved, not copied.
    const transferList = task.kind === 'batch'
      ? [task.envelopes.buffer as ArrayBuffer, task.shards.buffer as ArrayBuffer]
      : undefined;
    return this.pool.run(task, { signal: this.queued.signal, transferList }) as Promise<T>;
  }
}

export interface HostedShard extends ShardStatus {
  state: 'active' | 'recovering';
}

export class ActorHost implements LedgerPort {
  private readonly lanes: Lane[];
  private readonly opts: Required<
    Omit<ActorHostOptions, 'onGroupCommit' | 'onWorkerError' | 'onShardsLost'>
  > &
    ActorHostOptions;
  /** dynamic mode: the shards hosted now and their epochs */
  private readonly hosted = new Map<number, number>();
  private flushScheduled = false;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ActorHostOptions) {
    this.opts = { ...DEFAULTS, ...options };
    validateOptions(this.opts);
    this.lanes = [];
    for (let i = 0; i < this.opts.workers; i++) this.lanes.push(new Lane(i, this.spawn(i)));
    for (const lane of this.lanes) lane.pool.on('error', (err) => this.workerFailed(lane, err));
    if (this.opts.dynamic) {
      // A worker can die between tasks (a timer-driven commit failed closed): its successor
      // starts empty, so the shards it hosted must be claimed and acquired again.
      for (const lane of this.lanes) lane.pool.on('workerDestroy', () => this.workerGone(lane));
    }
  }

  private workerGone(lane: Lane): void {
    if (this.closing || !lane.ready) return;
    lane.ready = false;
    this.dropLaneShards(lane);
    // Not from inside piscina's 'workerDestroy': the dying worker is still in its ready list
    // then, and a task posted now fails an assertion instead of starting a fresh worker.
    setImmediate(() => void this.recover(lane));
  }

  /**
   * Piscina reports a worker that died outside any task as an 'error' event on the pool; most
   * often one that could not start because its storage could not open (PostgreSQL down while
   * the lane recovers). Unhandled, that event kills the whole pod. Tasks queued for a worker
   * that never started stay queued forever (piscina does not fail them), which would wedge
   * recover() and acquire(): abort them (none reached a worker, so none was applied; their
   * callers see a retryable failure) and let the lane recover with backoff.
   */
  private workerFailed(lane: Lane, err: unknown): void {
    this.opts.onWorkerError?.(lane.index, asError(err));
    const queued = lane.queued;
    lane.queued = new AbortController();
    queued.abort(err);
    this.workerGone(lane);
  }

  /** Starts the workers and resolves once every shard is recovered (throws if one cannot). */
  async start(): Promise<void> {
    await Promise.all(
      this.lanes.map(async (lane) => {
        await lane.run({ kind: 'status' } satisfies WorkerTask);
        lane.ready = true;
      }),
    );
  }

  submit(tenant: string, cmd: Command, reply: Reply): void {
    if (this.closing) return reply(failure('shutting_down'));
    const shard = shardOf(tenant, this.opts.shardCount);
    const lane = this.lanes[shard % this.lanes.length] as Lane;
    if (!lane.ready) return reply(failure('shard_unavailable'));
    if (this.opts.dynamic && !this.hosted.has(shard)) return reply(failure('shard_unavailable'));
    if (lane.envelopes.length >= this.opts.maxQueued) return reply(failure('overloaded'));
    lane.envelopes.push({ tenant, cmd });
    lane.shards.push(shard);
    lane.replies.push(reply);
    this.scheduleFlush();
  }

  isReady(): boolean {
    return !this.closing && this.lanes.every((lane) => lane.ready);
  }

  /** Dynamic mode: whether this pod's workers host the shard now. */
  hosts(shard: number): boolean {
    return this.hosted.has(shard);
  }

  /** Dynamic mode: the shards hosted now. */
  hostedShards(): number[] {
    return [...this.hosted.keys()].sort((a, b) => a - b);
  }

  /**
   * Dynamic mode: hosts a shard at an epoch already claimed in the directory. Resolves once
   * the worker recovered it (snapshot + journal tail) and commands for it are accepted.
   */
  async acquire(shard: number, epoch: number): Promise<ShardStatus> {
    this.checkDynamicShard(shard);
    const lane = this.laneOf(shard);
    const task: WorkerTask = { kind: 'acquire', shard, epoch };
    const status = (await lane.run(task)) as ShardStatus;
    if (this.closing) throw new Error('actor host is closing');
    this.hosted.set(shard, epoch);
    return status;
  }

  /**
   * Dynamic mode: stops hosting a shard. New commands for it are refused from now on; those
   * still queued here are handed back unsent; those already sent finish and are durable
   * before this resolves (the worker drains its group commit).
   */
  async release(shard: number, snapshot: boolean): Promise<ReleasedShard> {
    this.checkDynamicShard(shard);
    this.hosted.delete(shard);
    const lane = this.laneOf(shard);
    const queued = this.takeQueued(lane, shard);
    const task: WorkerTask = { kind: 'release', shard, snapshot };
    const status = (await lane.run(task)) as ShardStatus;
    return { status, queued };
  }

  private checkDynamicShard(shard: number): void {
    if (!this.opts.dynamic) throw new Error('actor host: acquire/release need dynamic mode');
    if (!Number.isInteger(shard) || shard < 0 || shard >= this.opts.shardCount) {
      throw new RangeError(`actor host: no shard ${shard}`);
    }
  }

  private laneOf(shard: number): Lane {
    return this.lanes[shard % this.lanes.length] as Lane;
  }

  /** Removes the shard's commands from the lane's unsent queue, in arrival order. */
  private takeQueued(lane: Lane, shard: number): QueuedCommand[] {
    const taken: QueuedCommand[] = [];
    let kept = 0;
    for (let i = 0; i < lane.shards.length; i++) {
      const env = lane.envelopes[i] as Envelope;
      const reply = lane.replies[i] as Reply;
      if (lane.shards[i] === shard) {
        taken.push({ tenant: env.tenant, cmd: env.cmd, reply });
        continue;
      }
      lane.envelopes[kept] = env;
      lane.shards[kept] = lane.shards[i] as number;
      lane.replies[kept] = reply;
      kept++;
    }
    lane.envelopes.length = kept;
    lane.shards.length = kept;
    lane.replies.length = kept;
    return taken;
  }

  /** Commands waiting or in flight across all workers. */
  queueDepth(): number {
    let depth = 0;
    for (const lane of this.lanes) depth += lane.envelopes.length + lane.inflight;
    return depth;
  }

  /** Journal entries applied but not yet durable, summed over workers. */
  journalLag(): number {
    let lag = 0;
    for (const lane of this.lanes) lag += lane.lag;
    return lag;
  }

  /** Every shard of this pod; a recovering worker's shards are listed as 'recovering'. */
  async shards(): Promise<HostedShard[]> {
    const perLane = await Promise.all(this.lanes.map(async (lane) => {
      if (!lane.ready) return this.recoveringShards(lane);
      try {
        const reply = (await lane.run({ kind: 'status' } satisfies WorkerTask)) as StatusReply;
        return reply.shards.map((s): HostedShard => ({ ...s, state: 'active' }));
      } catch {
        return this.recoveringShards(lane);
      }
    }));
    return perLane.flat().sort((a, b) => a.shard - b.shard);
  }

  private recoveringShards(lane: Lane): HostedShard[] {
    const out: HostedShard[] = [];
    if (this.opts.dynamic) return out; // the shard directory knows what this pod should host
    for (let s = lane.index; s < this.opts.shardCount; s += this.lanes.length) {
      out.push({ shard: s, epoch: 0, lastSequence: 0, durableSequence: 0, state: 'recovering' });
    }
    return out;
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.flush();
    await this.idle();
    for (const lane of this.lanes) {
      if (lane.ready) await lane.run({ kind: 'shutdown' } satisfies WorkerTask);
      await lane.pool.destroy();
    }
  }

  private spawn(index: number): Piscina {
    const shards: number[] = [];
    const step = this.opts.workers;
    if (!this.opts.dynamic) for (let s = index; s < this.opts.shardCount; s += step) shards.push(s);
    const config: WorkerConfig = {
      workerIndex: index,
      shards,
      epoch: this.opts.epoch,
      snapshotEvery: this.opts.snapshotEvery,
      snapshotSeconds: this.opts.snapshotSeconds,
      // the tasks in flight, plus room for the timer's voids and one command larger than a task
      maxPendingRows: this.opts.maxInflightTasks * this.opts.maxTaskRows + 1_000_000,
      verify: this.opts.verify,
      tickMs: this.opts.tickMs,
    };
    const isTs = this.opts.workerUrl.pathname.endsWith('.ts');
    return new Piscina({
      filename: this.opts.workerUrl.href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: this.opts.maxInflightTasks + 2,
      loadBalancer: sharingBalancer(this.opts.maxInflightTasks + 2),
      // The worker awaits fsync/COMMIT between tasks; a blocking Atomics.wait would stall it.
      atomics: 'disabled',
      // Per-task run/wait histograms cost a few us per task; the ledger has its own metrics.
      recordTiming: false,
      execArgv: isTs ? ['--import', 'tsx'] : undefined, // a built worker inherits the pod's flags
      workerData: { config, storage: this.opts.storage },
      ...(this.opts.workerYoungGenerationMb > 0
        ? { resourceLimits: { maxYoungGenerationSizeMb: this.opts.workerYoungGenerationMb } }
        : {}),
    });
  }

  /** After a failure: marks the lane ready again once a fresh worker has recovered. */
  private async recover(lane: Lane): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        await lane.run({ kind: 'status' } satisfies WorkerTask);
        lane.ready = true;
        return;
      } catch (err) {
        this.opts.onWorkerError?.(lane.index, asError(err));
        await sleep(Math.min(5000, 100 * 2 ** attempt));
      }
    }
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // One task per worker per event-loop turn: everything submitted this turn rides along.
    setImmediate(() => this.flush());
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const lane of this.lanes) {
      while (lane.envelopes.length > 0 && lane.inflight < this.opts.maxInflightTasks) {
        this.dispatch(lane);
      }
    }
    this.checkIdle();
  }

  private dispatch(lane: Lane): void {
    const { envelopes, shards, replies } = this.take(lane);
    const task: WorkerTask = {
      kind: 'batch',
      now: Date.now(),
      shards: Uint16Array.from(shards),
      envelopes: encodeEnvelopes(envelopes),
    };
    lane.inflight++;
    lane.run<BatchReply>(task).then(
      (reply) => this.delivered(lane, envelopes, replies, reply),
      (err: unknown) => this.failed(lane, replies, err),
    );
  }

  /**
   * Takes the waiting commands of one task (see taskSize); swaps arrays instead of copying if
   * it takes them all.
   */
  private take(lane: Lane): { envelopes: Envelope[]; shards: number[]; replies: Reply[] } {
    const n = taskSize(lane.envelopes, this.opts.maxTaskItems, this.opts.maxTaskRows);
    if (n === lane.envelopes.length) {
      const taken = { envelopes: lane.envelopes, shards: lane.shards, replies: lane.replies };
      lane.envelopes = [];
      lane.shards = [];
      lane.replies = [];
      return taken;
    }
    return {
      envelopes: lane.envelopes.splice(0, n),
      shards: lane.shards.splice(0, n),
      replies: lane.replies.splice(0, n),
    };
  }

  private delivered(lane: Lane, sent: Envelope[], replies: Reply[], reply: BatchReply): void {
    lane.inflight--;
    lane.lag = reply.lag;
    const outcomes = decodeReplies(reply.outcomes, sent);
    for (let i = 0; i < replies.length; i++) (replies[i] as Reply)(outcomes[i] as Outcome);
    const commits = reply.commits;
    if (this.opts.onGroupCommit) {
      for (let i = 0; i + 1 < commits.length; i += 2) {
        this.opts.onGroupCommit(commits[i] as number, commits[i + 1] as number);
      }
    }
    this.afterTask(lane);
  }

  /**
   * The worker could not make the batch durable (or died): nothing of it was acknowledged.
   * Answer with a retryable error; the worker restarts and rebuilds from its journal.
   */
  private failed(lane: Lane, replies: Reply[], err: unknown): void {
    lane.inflight--;
    const wasReady = lane.ready;
    lane.ready = false;
    for (const reply of replies) reply(failure('storage_unavailable'));
    this.opts.onWorkerError?.(lane.index, asError(err));
    if (wasReady) this.dropLaneShards(lane);
    if (wasReady && !this.closing) void this.recover(lane);
    this.afterTask(lane);
  }

  /** Dynamic mode: the lane's worker died, so its shards are hosted no more. */
  private dropLaneShards(lane: Lane): void {
    if (!this.opts.dynamic) return;
    const lost: number[] = [];
    for (const shard of this.hosted.keys()) {
      if (shard % this.lanes.length === lane.index) lost.push(shard);
    }
    for (const shard of lost) this.hosted.delete(shard);
    for (const q of this.takeAll(lane)) q.reply(failure('shard_unavailable'));
    if (lost.length > 0) this.opts.onShardsLost?.(lost);
  }

  private takeAll(lane: Lane): QueuedCommand[] {
    const out: QueuedCommand[] = [];
    for (let i = 0; i < lane.envelopes.length; i++) {
      const env = lane.envelopes[i] as Envelope;
      out.push({ tenant: env.tenant, cmd: env.cmd, reply: lane.replies[i] as Reply });
    }
    lane.envelopes = [];
    lane.shards = [];
    lane.replies = [];
    return out;
  }

  private afterTask(lane: Lane): void {
    if (lane.envelopes.length > 0) this.scheduleFlush();
    this.checkIdle();
  }

  private idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.queueDepth() > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

export async function startActorHost(options: ActorHostOptions): Promise<ActorHost> {
  const host = new ActorHost(options);
  await host.start();
  return host;
}

/**
 * How many of the waiting commands (oldest first) one task takes: at most `maxItems`, and no
 * more than `maxRows` journal entries (see maxEntriesOf), but always at least one.
 */
export function taskSize(waiting: readonly Envelope[], maxItems: number, maxRows: number): number {
  const n = Math.min(waiting.length, maxItems);
  let rows = 0;
  for (let i = 0; i < n; i++) {
    rows += maxEntriesOf((waiting[i] as Envelope).cmd);
    if (rows > maxRows && i > 0) return i;
  }
  return n;
}

function failure(code: ErrorCode): Outcome {
  return { ok: false, error: errorRecord(code) };
}

function validateOptions(o: ActorHostOptions): void {
  const check = (name: string, value: number | undefined, min: number, max: number): void => {
    if (value === undefined) return;
    if (!Number.isInteger(value) || value < min || value > max) {
      const range = `[${min}, ${max}]`;
      throw new RangeError(`actor host: ${name} must be an integer in ${range}, got ${value}`);
    }
  };
  check('shardCount', o.shardCount, 1, 65_535);
  check('workers', o.workers, 1, 256);
  check('maxTaskItems', o.maxTaskItems, 1, 1_000_000);
  check('maxTaskRows', o.maxTaskRows, 1, 10_000_000);
  check('maxInflightTasks', o.maxInflightTasks, 1, 1024);
  check('workerYoungGenerationMb', o.workerYoungGenerationMb, 0, 4096);
  check('maxQueued', o.maxQueued, 1, 10_000_000);
  check('snapshotEvery', o.snapshotEvery, 0, 1_000_000_000);
  check('snapshotSeconds', o.snapshotSeconds, 0, 86_400);
  if (o.workers > o.shardCount) {
    throw new RangeError(`actor host: workers (${o.workers}) must not exceed shardCount`);
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
