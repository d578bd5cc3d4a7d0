// The main-thread side of the shard actors: routes each command to its shard's worker, sends
// one batch per worker per event-loop turn, and replies only when the worker says durable.
// Never applies ledger rules itself; a full queue is refused with 'overloaded', never grown.

import { Piscina } from 'piscina';
import { errorRecord, type ErrorCode } from '../protocol/errors.js';
import { shardOf } from '../protocol/shard-key.js';
import { decodeOutcomes, encodeEnvelopes } from '../protocol/thread-codec.js';
import type { Command, Envelope, Outcome } from '../protocol/types.js';
import type { BatchReply, ShardStatus, StatusReply, WorkerConfig, WorkerTask } from './actor-worker.js';
import type { LedgerPort, Reply } from './ledger-port.js';

export interface ActorHostOptions {
  /** the worker entry file, which wires storage into shards/actor-worker */
  workerUrl: URL;
  /** passed through untouched to the worker entry as workerData.storage */
  storage: unknown;
  shardCount: number;
  workers: number;
  epoch?: number;
  snapshotEvery?: number;
  verify?: boolean;
  /** commands per task crossing to a worker */
  maxTaskItems?: number;
  /** tasks in flight per worker: one applying while earlier ones commit */
  maxInflightTasks?: number;
  /** commands waiting per worker before new ones are refused with 'overloaded' */
  maxQueued?: number;
  tickMs?: number;
  onGroupCommit?: (rows: number, seconds: number) => void;
  onWorkerError?: (workerIndex: number, err: Error) => void;
}

const DEFAULTS = {
  epoch: 1,
  snapshotEvery: 100_000,
  verify: false,
  maxTaskItems: 16_384,
  maxInflightTasks: 8,
  maxQueued: 131_072,
  tickMs: 1000,
};

/** One worker thread and the commands waiting for it. */
class Lane {
  envelopes: Envelope[] = [];
  shards: number[] = [];
  replies: Reply[] = [];
  inflight = 0;
  ready = false;
  /** entries applied but not yet durable, as of the worker's last reply */
  lag = 0;
  constructor(
    readonly index: number,
    readonly pool: Piscina,
  ) {}
}

export interface HostedShard extends ShardStatus {
  state: 'active' | 'recovering';
}

export class ActorHost implements LedgerPort {
  private readonly lanes: Lane[];
  private readonly opts: Required<Omit<ActorHostOptions, 'onGroupCommit' | 'onWorkerError'>> &
    ActorHostOptions;
  private flushScheduled = false;
  private closing = false;
  private idleWaiters: Array<() => void> = [];

  constructor(options: ActorHostOptions) {
    this.opts = { ...DEFAULTS, ...options };
    validateOptions(this.opts);
    this.lanes = [];
    for (let i = 0; i < this.opts.workers; i++) this.lanes.push(new Lane(i, this.spawn(i)));
  }

  /** Starts the workers and resolves once every shard is recovered (throws if one cannot). */
  async start(): Promise<void> {
    await Promise.all(
      this.lanes.map(async (lane) => {
        await lane.pool.run({ kind: 'status' } satisfies WorkerTask);
        lane.ready = true;
      }),
    );
  }

  submit(tenant: string, cmd: Command, reply: Reply): void {
    if (this.closing) return reply(failure('shutting_down'));
    const shard = shardOf(tenant, this.opts.shardCount);
    const lane = this.lanes[shard % this.lanes.length] as Lane;
    if (!lane.ready) return reply(failure('shard_unavailable'));
    if (lane.envelopes.length >= this.opts.maxQueued) return reply(failure('overloaded'));
    lane.envelopes.push({ tenant, cmd });
    lane.shards.push(shard);
    lane.replies.push(reply);
    this.scheduleFlush();
  }

  isReady(): boolean {
    return !this.closing && this.lanes.every((lane) => lane.ready);
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
        const reply = (await lane.pool.run({ kind: 'status' } satisfies WorkerTask)) as StatusReply;
        return reply.shards.map((s): HostedShard => ({ ...s, state: 'active' }));
      } catch {
        return this.recoveringShards(lane);
      }
    }));
    return perLane.flat().sort((a, b) => a.shard - b.shard);
  }

  private recoveringShards(lane: Lane): HostedShard[] {
    const out: HostedShard[] = [];
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
      if (lane.ready) await lane.pool.run({ kind: 'shutdown' } satisfies WorkerTask);
      await lane.pool.destroy();
    }
  }

  private spawn(index: number): Piscina {
    const shards: number[] = [];
    for (let s = index; s < this.opts.shardCount; s += this.opts.workers) shards.push(s);
    const config: WorkerConfig = {
      workerIndex: index,
      shards,
      epoch: this.opts.epoch,
      snapshotEvery: this.opts.snapshotEvery,
      maxPendingRows: this.opts.maxInflightTasks * this.opts.maxTaskItems * 2 + 1_000_000,
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
      // The worker awaits fsync/COMMIT between tasks; a blocking Atomics.wait would stall it.
      atomics: 'disabled',
      execArgv: isTs ? ['--import', 'tsx'] : [],
      workerData: { config, storage: this.opts.storage },
    });
  }

  /** After a failure: marks the lane ready again once a fresh worker has recovered. */
  private async recover(lane: Lane): Promise<void> {
    for (let attempt = 0; !this.closing; attempt++) {
      try {
        await lane.pool.run({ kind: 'status' } satisfies WorkerTask);
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
    lane.pool.run(task).then(
      (reply: BatchReply) => this.delivered(lane, replies, reply),
      (err: unknown) => this.failed(lane, replies, err),
    );
  }

  /** Takes up to maxTaskItems waiting commands; swaps arrays instead of copying if it can. */
  private take(lane: Lane): { envelopes: Envelope[]; shards: number[]; replies: Reply[] } {
    const max = this.opts.maxTaskItems;
    if (lane.envelopes.length <= max) {
      const taken = { envelopes: lane.envelopes, shards: lane.shards, replies: lane.replies };
      lane.envelopes = [];
      lane.shards = [];
      lane.replies = [];
      return taken;
    }
    return {
      envelopes: lane.envelopes.splice(0, max),
      shards: lane.shards.splice(0, max),
      replies: lane.replies.splice(0, max),
    };
  }

  private delivered(lane: Lane, replies: Reply[], reply: BatchReply): void {
    lane.inflight--;
    lane.lag = reply.lag;
    const outcomes = decodeOutcomes(reply.outcomes);
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
    if (wasReady && !this.closing) void this.recover(lane);
    this.afterTask(lane);
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

function failure(code: ErrorCode): Outcome {
  return { ok: false, error: errorRecord(code) };
}

function validateOptions(o: ActorHostOptions): void {
  const check = (name: string, value: number | undefined, min: number, max: number): void => {
    if (value === undefined) return;
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new RangeError(`actor host: ${name} must be an integer in [${min}, ${max}], got ${value}`);
    }
  };
  check('shardCount', o.shardCount, 1, 65_535);
  check('workers', o.workers, 1, 256);
  check('maxTaskItems', o.maxTaskItems, 1, 1_000_000);
  check('maxInflightTasks', o.maxInflightTasks, 1, 1024);
  check('maxQueued', o.maxQueued, 1, 10_000_000);
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
