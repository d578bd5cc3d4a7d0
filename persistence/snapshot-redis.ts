// Redis snapshot store: each shard snapshot chunked under its own keys, published by a manifest
// and a per-shard index only once every chunk is written. Never blocks payments: every Redis
// call is bounded in time, and a failure means "no snapshot" (a longer replay), never wrong data.

import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { HASH_BYTES } from '../protocol/journal-entry.js';
import type { Snapshot, SnapshotStore } from '../protocol/storage.js';
import { stateSha256 } from './stepped-hash.js';

/*
 * Keys, per shard S (P = keyPrefix):
 *   P snap:S:<seq>:<i>   chunk i of the snapshot at journal sequence seq (raw bytes)
 *   P snap:S:<seq>       manifest hash {v, shard, epoch, sequence, hash (hex), length, chunks,
 *                        sha256 (hex of the whole payload)}
 *   P snaps:S            sorted set of published snapshots, score = member = seq
 *   P snaps-pending:S    sorted set of snapshots being written, member "seq:chunks", so chunks
 *                        of a save that died half-way are found and removed later
 * Save order: pending → chunks → MULTI {manifest, index, un-pending} → prune. A reader only
 * follows the index, so it never sees a half-written snapshot; it still checks every byte
 * against the manifest's sha256, so a chunk lost or damaged later is skipped, not trusted.
 *
 * Stale epochs. A snapshot is saved only after the group holding its sequence is durable, and
 * the journal's fencing makes a stale owner's groups fail, so every stored head (sequence,
 * hash) lies on the one journal chain. recoverActor replays from the snapshot head, and both
 * journals verify the chain starting at head.hash (FileJournal.seekCursor/scanSegment,
 * PgJournal ChainCheck + checkReplayEnd): a snapshot that is not a prefix of the journal is
 * refused there, and recoverActor falls back to a full replay. The epoch inside the state
 * is overwritten by the journal's epoch after replay, so an old epoch in a valid prefix is
 * harmless. The manifest keeps the epoch for
 * operators and for `minEpoch` (see options), which lets a caller refuse old ones outright.
 */

const VERSION = '1';
const DEFAULT_KEEP = 2;
const DEFAULT_CHUNK_BYTES = 1024 * 1024;
const DEFAULT_COMMAND_TIMEOUT_MS = 2000;
/** chunk commands in flight at once: bounds socket buffers and per-command waiting time */
const CHUNK_WINDOW = 8;
/** chunk reads in flight at once while loading (recovery waits on nothing else) */
const READ_WINDOW = 32;
/** larger snapshots are refused (Buffer limit): a damaged manifest, not a real one */
const MAX_SNAPSHOT_BYTES = 2 ** 32;
/** index entries looked at by loadNewest: published ones are pruned to `keep` */
const MAX_CANDIDATES = 64;

export type SnapshotOp = 'save' | 'load';

export interface RedisSnapshotStoreOptions {
  /** prepended to every key (default 'ledger:'); tests use one prefix per test */
  keyPrefix?: string;
  /** bytes per chunk key (default 1 MiB; 1 to 512 MiB) */
  chunkBytes?: number;
  /** published snapshots kept per shard (default 2; 1 to 16) */
  keep?: number;
  /** bound on every Redis command and on waiting for a connection (default 2000 ms) */
  commandTimeoutMs?: number;
  /**
   * after a failure, calls fail at once for this long (default 5000 ms) instead of each
   * waiting out the timeout: a pod recovering 32 shards against a hung Redis waits once
   */
  retryAfterMs?: number;
  /** loadNewest skips snapshots whose epoch is lower than this (default 0: none) */
  minEpoch?: number;
  /** operator-facing events: outages, skipped (corrupt/incomplete) snapshots */
  log?: (event: string, fields: Record<string, unknown>) => void;
  /** metric hook, called once per save/load with its outcome and duration */
  observe?: (op: SnapshotOp, outcome: 'ok' | 'failed' | 'none', seconds: number) => void;
}

/** A save or load that could not talk to Redis in time; the caller falls back. */
export class SnapshotStoreError extends Error {
  readonly code = 'snapshot_store_unavailable';
  readonly retryable = true;
  constructor(message: string, options?: { cause: unknown }) {
    super(message, options);
    this.name = 'SnapshotStoreError';
  }
}

interface Manifest {
  shard: number;
  epoch: number;
  sequence: number;
  hash: Buffer;
  length: number;
  chunks: number;
  sha256: string;
}

function checkRange(name: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new RangeError(`RedisSnapshotStore: ${name} must be an integer in [${min}, ${max}], ` +
      `got ${value}`);
  }
  return value;
}

/** Parses a manifest hash, or says why it is not one (never throws on garbage). */
export function parseManifest(fields: Record<string, string>): Manifest | string {
  if (Object.keys(fields).length === 0) return 'manifest missing';
  if (fields.v !== VERSION) return `manifest version ${String(fields.v)}`;
  const ints: number[] = [];
  for (const name of ['shard', 'epoch', 'sequence', 'length', 'chunks']) {
    const text = fields[name] ?? '';
    const n = /^\d{1,16}$/.test(text) ? Number(text) : Number.NaN;
    if (!Number.isSafeInteger(n)) return `manifest ${name} is not an integer`;
    ints.push(n);
  }
  const [shard = 0, epoch = 0, sequence = 0, length = 0, chunks = 0] = ints;
  const hash = fields.hash ?? '';
  const sha256 = fields.sha256 ?? '';
  if (!/^[0-9a-f]{64}$/.test(hash)) return 'manifest head hash is not 32 bytes of hex';
  if (!/^[0-9a-f]{64}$/.test(sha256)) return 'manifest sha256 is not 32 bytes of hex';
  const hashBytes = Buffer.from(hash, 'hex');
  return { shard, epoch, sequence, hash: hashBytes, length, chunks, sha256 };
}

export class RedisSnapshotStore implements SnapshotStore {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly chunkBytes: number;
  private readonly keep: number;
  private readonly timeoutMs: number;
  private readonly minEpoch: number;
  private readonly retryAfterMs: number;
  /** Date.now() before which calls fail fast (an outage was seen moments ago) */
  private openUntil = 0;
  private readonly log: NonNullable<RedisSnapshotStoreOptions['log']>;
  private readonly observe: NonNullable<RedisSnapshotStoreOptions['observe']>;
  /** true between the first failure of an outage and the next success: one log line each */
  private failing = false;
  private failures = 0;
  private closed = false;

  constructor(target: string | RedisOptions, opts: RedisSnapshotStoreOptions = {}) {
    this.prefix = opts.keyPrefix ?? 'ledger:';
    this.chunkBytes = checkRange('chunkBytes', opts.chunkBytes ?? DEFAULT_CHUNK_BYTES, 1,
      512 * 1024 * 1024);
    this.keep = checkRange('keep', opts.keep ?? DEFAULT_KEEP, 1, 16);
    this.timeoutMs = checkRange('commandTimeoutMs',
      opts.commandTimeoutMs ?? DEFAULT_COMMAND_TIMEOUT_MS, 10, 600_000);
    this.minEpoch = checkRange('minEpoch', opts.minEpoch ?? 0, 0, 2 ** 32);
    this.retryAfterMs = checkRange('retryAfterMs', opts.retryAfterMs ?? 5000, 0, 600_000);
    this.log = opts.log ?? (() => undefined);
    this.observe = opts.observe ?? (() => undefined);
    const bounded: RedisOptions = {
      // No offline queue and no per-request retries: a command either goes out on a live
      // connection now or fails now; with commandTimeout nothing waits unboundedly.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.timeoutMs,
      connectTimeout: this.timeoutMs,
      // Keep reconnecting in the background (capped backoff) so snapshots resume by themselves.
      retryStrategy: (times: number) => Math.min(1000, 50 * times),
      lazyConnect: false,
    };
    this.redis = typeof target === 'string'
      ? new Redis(target, bounded)
      : new Redis({ ...target, ...bounded });
    // Without a listener ioredis prints every reconnect error; outages are logged per save/load.
    this.redis.on('error', () => undefined);
  }

  async save(snapshot: Snapshot): Promise<void> {
    const started = performance.now();
    try {
      await this.ready();
      await this.write(snapshot);
      await this.prune(snapshot.shard);
      this.succeeded();
      this.observe('save', 'ok', (performance.now() - started) / 1000);
    } catch (err) {
      this.failed('save', snapshot.shard, err);
      this.observe('save', 'failed', (performance.now() - started) / 1000);
      throw new SnapshotStoreError(`snapshot save, shard ${snapshot.shard}: ${errText(err)}`,
        { cause: err });
    }
  }

  /** The newest valid snapshot; null if there is none or Redis did not answer in time. */
  async loadNewest(shard: number): Promise<Snapshot | null> {
    const started = performance.now();
    try {
      await this.ready();
      const found = await this.findNewest(shard);
      this.succeeded();
      this.observe('load', found ? 'ok' : 'none', (performance.now() - started) / 1000);
      return found;
    } catch (err) {
      this.failed('load', shard, err);
      this.observe('load', 'failed', (performance.now() - started) / 1000);
      return null; // recovery falls back to a full journal replay
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    try {
      if (this.redis.status === 'ready') await this.redis.quit();
      else this.redis.disconnect();
    } catch {
      this.redis.disconnect(); // quit could not be sent: drop the socket instead
    }
  }

  // ---------------------------------------------------------------------------------------

  private indexKey(shard: number): string {
    return `${this.prefix}snaps:${shard}`;
  }

  private pendingKey(shard: number): string {
    return `${this.prefix}snaps-pending:${shard}`;
  }

  private manifestKey(shard: number, sequence: number): string {
    return `${this.prefix}snap:${shard}:${sequence}`;
  }

  private chunkKeys(shard: number, sequence: number, chunks: number): string[] {
    const base = this.manifestKey(shard, sequence);
    return Array.from({ length: chunks }, (_, i) => `${base}:${i}`);
  }

  /** Resolves once connected; rejects at once in an outage, else after commandTimeoutMs. */
  private ready(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('store is closed'));
    if (Date.now() < this.openUntil) {
      return Promise.reject(new Error('Redis failed moments ago; not retrying yet'));
    }
    const status = this.redis.status;
    if (status === 'ready') return Promise.resolve();
    // Between reconnect attempts of a known outage: fail now instead of waiting.
    if (status === 'reconnecting' || status === 'close' || status === 'end') {
      return Promise.reject(new Error(`not connected (status ${status})`));
    }
    return new Promise((resolve, reject) => {
      const done = (err: Error | null): void => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        if (err) reject(err);
        else resolve();
      };
      const onReady = (): void => done(null);
      const timer = setTimeout(() => done(new Error(`not connected after ${this.timeoutMs} ms ` +
        `(status ${this.redis.status})`)), this.timeoutMs);
      this.redis.on('ready', onReady);
    });
  }

  private async write(s: Snapshot): Promise<void> {
    if (s.head.hash.length !== HASH_BYTES) throw new RangeError('snapshot head hash: 32 bytes');
    const { shard } = s;
    const sequence = s.head.sequence;
    const chunks = Math.ceil(s.state.length / this.chunkBytes);
    const manifest = this.manifestKey(shard, sequence);
    const member = String(sequence);
    // A snapshot at the same sequence (a restart re-saving it) is unpublished before its keys
    // are overwritten; older published snapshots stay valid throughout.
    await execOrThrow(this.redis.multi()
      .zadd(this.pendingKey(shard), sequence, `${sequence}:${chunks}`)
      .zrem(this.indexKey(shard), member)
      .unlink(manifest));
    const keys = this.chunkKeys(shard, sequence, chunks);
    const state = Buffer.from(s.state.buffer, s.state.byteOffset, s.state.byteLength);
    // The writer's sha256, or hashed a step per turn: never in one go on the shard's thread.
    const sha256 = Buffer.from(await stateSha256(s)).toString('hex');
    for (let first = 0; first < chunks; first += CHUNK_WINDOW) {
      const pipeline = this.redis.pipeline();
      for (let i = first; i < Math.min(chunks, first + CHUNK_WINDOW); i++) {
        const from = i * this.chunkBytes;
        pipeline.set(keys[i] as string, state.subarray(from, from + this.chunkBytes));
      }
      await execOrThrow(pipeline);
    }
    await execOrThrow(this.redis.multi()
      .hset(manifest, {
        v: VERSION, shard: String(shard), epoch: String(s.epoch), sequence: member,
        hash: Buffer.from(s.head.hash).toString('hex'), length: String(s.state.length),
        chunks: String(chunks), sha256,
      })
      .zadd(this.indexKey(shard), sequence, member)
      .zrem(this.pendingKey(shard), `${sequence}:${chunks}`));
  }

  /**
   * Keeps the `keep` newest published snapshots; removes older ones and the chunks of saves
   * that died before publishing (pending entries below the newest published sequence).
   */
  private async prune(shard: number): Promise<void> {
    const published = (await this.redis.zrange(this.indexKey(shard), 0, '-1')).map(Number);
    const old = published.slice(0, Math.max(0, published.length - this.keep));
    const newest = published[published.length - 1] ?? 0;
    const pending = await this.redis.zrangebyscore(this.pendingKey(shard), '-inf', `(${newest}`);
    if (old.length === 0 && pending.length === 0) return;
    const counts = await Promise.all(old.map((seq) =>
      this.redis.hget(this.manifestKey(shard, seq), 'chunks')));
    const doomed: string[] = [];
    old.forEach((seq, i) => {
      doomed.push(this.manifestKey(shard, seq), ...this.chunkKeys(shard, seq,
        Number(counts[i] ?? 0)));
    });
    const live = new Set(published.slice(old.length));
    for (const entry of pending) {
      const [seq = 0, chunks = 0] = entry.split(':').map(Number);
      if (!live.has(seq)) doomed.push(...this.chunkKeys(shard, seq, chunks));
    }
    const tx = this.redis.multi();
    if (old.length > 0) tx.zrem(this.indexKey(shard), ...old.map(String));
    if (pending.length > 0) tx.zrem(this.pendingKey(shard), ...pending);
    for (let i = 0; i < doomed.length; i += 512) tx.unlink(...doomed.slice(i, i + 512));
    await execOrThrow(tx);
  }

  private async findNewest(shard: number): Promise<Snapshot | null> {
    const candidates = await this.redis.zrevrange(this.indexKey(shard), 0, MAX_CANDIDATES - 1);
    for (const member of candidates) {
      const sequence = Number(member);
      const got = await this.readOne(shard, sequence);
      if (typeof got !== 'string') return got;
      this.log('snapshot_skipped', { shard, sequence, reason: got, store: 'redis' });
    }
    return null;
  }

  /** One published snapshot, or why it cannot be used. Redis errors propagate. */
  private async readOne(shard: number, sequence: number): Promise<Snapshot | string> {
    const m = parseManifest(await this.redis.hgetall(this.manifestKey(shard, sequence)));
    if (typeof m === 'string') return m;
    if (m.shard !== shard || m.sequence !== sequence) return 'manifest names another snapshot';
    if (m.epoch < this.minEpoch) return `epoch ${m.epoch} is below ${this.minEpoch}`;
    if (m.chunks > m.length || (m.length > 0) !== (m.chunks > 0)) return 'chunk count implausible';
    if (m.length > MAX_SNAPSHOT_BYTES) return `length ${m.length} is implausible`;
    const keys = this.chunkKeys(shard, sequence, m.chunks);
    // Copied into place and hashed as the chunks arrive, overlapping the next reads.
    const state = Buffer.allocUnsafe(m.length);
    const hash = createHash('sha256');
    let at = 0;
    for (let first = 0; first < keys.length; first += READ_WINDOW) {
      const window = keys.slice(first, first + READ_WINDOW);
      const got = await Promise.all(window.map((k) => this.redis.getBuffer(k)));
      for (const [i, part] of got.entries()) {
        if (part === null) return `chunk ${first + i} missing`;
        if (at + part.length > m.length) return `chunks longer than the manifest's ${m.length}`;
        state.set(part, at);
        hash.update(part);
        at += part.length;
      }
    }
    if (at !== m.length) return `length ${at}, manifest says ${m.length}`;
    if (hash.digest('hex') !== m.sha256) return 'sha256 mismatch (corrupt chunk)';
    return { shard, epoch: m.epoch, head: { sequence, hash: m.hash }, state };
  }

  private succeeded(): void {
    if (!this.failing) return;
    this.log('snapshot_store_recovered', { store: 'redis', failures: this.failures });
    this.failing = false;
    this.failures = 0;
  }

  private failed(op: SnapshotOp, shard: number, err: unknown): void {
    this.failures++;
    this.openUntil = Date.now() + this.retryAfterMs;
    if (this.failing) return;
    this.failing = true;
    this.log('snapshot_store_failed', { store: 'redis', op, shard, error: errText(err) });
  }
}

interface Execable {
  exec(): Promise<Array<[Error | null, unknown]> | null>;
}

/** Runs a pipeline/MULTI and throws the first per-command error (exec itself resolves). */
async function execOrThrow(batch: Execable): Promise<void> {
  const results = await batch.exec();
  if (results === null) throw new Error('transaction aborted');
  for (const [err] of results) if (err) throw err;
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
