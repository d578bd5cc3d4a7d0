// One pod of a multi-pod cluster: renews its lease, keeps a cached view of the shard directory
// (LISTEN/NOTIFY plus a slow poll), claims the shards it should own and routes every command to
// the pod that owns its shard. Never applies a command itself (the actor host does).

import type { Logger } from 'pino';
import { errorRecord, type ErrorCode } from '../../protocol/errors.js';
import { shardOf } from '../../protocol/shard-key.js';
import type { Command, Outcome } from '../../protocol/types.js';
import type { ActorHost, HostedShard } from '../../shards/actor-host.js';
import type { Reply } from '../../shards/ledger-port.js';
import type { DirectoryRow, PodRow, ShardDirectory } from '../../persistence/shard-directory.js';
import type { LedgerHost } from '../gateway/traffic.js';
import type { ClusterAdmin } from './cluster-admin.js';
import type { ClusterConfig } from './cluster-config.js';
import { Forwarder, HOPS_MAX } from './forwarder.js';
import { ShardHandoff, type HeldCommand } from './handoff.js';

export interface ClusterMetrics {
  forwarded(items: number): void;
  held(items: number): void;
  move(seconds: number, outcome: 'ok' | 'aborted' | 'failed'): void;
}

export interface ClusterNodeDeps {
  config: ClusterConfig;
  host: ActorHost;
  directory: ShardDirectory;
  log: Logger;
  metrics: ClusterMetrics;
}

export class ClusterNode implements LedgerHost {
  readonly podId: string;
  readonly handoffs: ShardHandoff[];
  /** the directory as last read, per shard (undefined: never claimed) */
  readonly rows = new Map<number, DirectoryRow>();
  /** pod id → internal address, of every registered pod */
  readonly addresses = new Map<string, string>();
  live: string[] = [];
  readonly forwarder: Forwarder | null;
  address = '';
  /** the operator actions, set by whoever wires the pod (the admin API reads it) */
  cluster?: ClusterAdmin;
  private readonly acquisitions = new Map<number, Promise<boolean>>();
  /** when a shard was first seen without a live owner (claim grace for non-preferred pods) */
  private readonly orphanSince = new Map<number, number>();
  private leaseOkUntil = 0;
  private started = false;
  private closing = false;
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private notified = new Set<number>();
  private notifyScheduled = false;

  constructor(readonly deps: ClusterNodeDeps) {
    this.podId = deps.config.podId;
    this.handoffs = Array.from({ length: deps.config.shardCount }, (_, s) => new ShardHandoff(s));
    const token = deps.config.token;
    this.forwarder = token === null ? null : new Forwarder({
      token,
      onForwarded: (n) => deps.metrics.forwarded(n),
      onFailure: (address, err) => deps.log.warn({ address, err: err.message }, 'forward failed'),
    });
  }

  /** Registers this pod at `address`, claims what it should own and starts the loops. */
  async start(address: string): Promise<void> {
    this.address = address;
    const { directory, config } = this.deps;
    await directory.init();
    await directory.listen((shard) => this.onNotify(shard));
    await this.tick();
    this.started = true;
    this.timer = setInterval(() => void this.tick(), config.heartbeatMs);
    this.timer.unref();
    this.deps.log.info({ pod: this.podId, address, leaseMs: config.leaseMs }, 'cluster joined');
  }

  // ---- LedgerHost ----------------------------------------------------------------------

  submit(tenant: string, cmd: Command, reply: Reply): void {
    this.route(tenant, cmd, reply, 0);
  }

  isReady(): boolean {
    if (!this.started || this.closing || !this.deps.host.isReady() || !this.leaseOk()) {
      return false;
    }
    for (const h of this.handoffs) {
      const row = this.rows.get(h.shard);
      const mine = row?.owner === this.podId && row.state !== 'moving';
      if (mine && h.state !== 'serving') return false;
    }
    return true;
  }

  queueDepth(): number {
    return this.deps.host.queueDepth();
  }

  journalLag(): number {
    return this.deps.host.journalLag();
  }

  shards(): Promise<HostedShard[]> {
    return this.deps.host.shards();
  }

  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    if (this.timer) clearInterval(this.timer);
    await this.ticking?.catch(() => undefined);
    for (const h of this.handoffs) {
      for (const item of h.takeHeld()) item.reply(failure('shutting_down'));
    }
    await this.deps.host.close();
    await this.deps.directory.leave();
    this.forwarder?.close();
    await this.deps.directory.close();
  }

  // ---- routing -------------------------------------------------------------------------

  /**
   * Serves the command here, holds it while the shard changes hands, or forwards it to the
   * owner. `hops`: how often it was forwarded already (bounded, so a stale view cannot loop).
   */
  route(tenant: string, cmd: Command, reply: Reply, hops: number): void {
    if (this.closing) return reply(failure('shutting_down'));
    const shard = shardOf(tenant, this.deps.config.shardCount);
    const h = this.handoffs[shard] as ShardHandoff;
    if (h.state === 'serving') {
      if (!this.leaseOk()) return reply(failure('shard_unavailable', 'lease not renewed'));
      return this.deps.host.submit(tenant, cmd, reply);
    }
    if (h.state === 'acquiring' || h.state === 'handing-off') {
      if (h.hold({ tenant, cmd, reply, hops })) return this.deps.metrics.held(1);
      return reply(failure('shard_unavailable', 'too many requests held for a moving shard'));
    }
    this.forward(shard, { tenant, cmd, reply, hops });
  }

  /** Forwards to the shard's owner by the cached directory, or answers 'shard_unavailable'. */
  forward(shard: number, item: HeldCommand): void {
    const row = this.rows.get(shard);
    const owner = row?.owner;
    const address = owner === undefined ? undefined : this.addresses.get(owner);
    if (owner === undefined || owner === this.podId || address === undefined) {
      return item.reply(failure('shard_unavailable', `shard ${shard} has no serving owner`));
    }
    if (this.forwarder === null || item.hops >= HOPS_MAX) {
      return item.reply(failure('shard_unavailable', `shard ${shard} is owned by ${owner}`));
    }
    this.forwarder.send(address, item.hops + 1, item.tenant, item.cmd, item.reply);
  }

  leaseOk(): boolean {
    return performance.now() < this.leaseOkUntil;
  }

  // ---- acquiring -----------------------------------------------------------------------

  /**
   * Makes this pod serve the shard if the directory lets it claim the shard: resolves true
   * once serving, false if the claim was refused or recovery failed. One attempt at a time.
   */
  ensureServing(shard: number): Promise<boolean> {
    const h = this.handoffs[shard] as ShardHandoff;
    if (h.state === 'serving') return Promise.resolve(true);
    const running = this.acquisitions.get(shard);
    if (running !== undefined) return running;
    if (h.state !== 'absent') return Promise.resolve(false);
    h.to('acquiring');
    const attempt = this.takeShard(h).finally(() => this.acquisitions.delete(shard));
    this.acquisitions.set(shard, attempt);
    return attempt;
  }

  private async takeShard(h: ShardHandoff): Promise<boolean> {
    const { directory, host, log } = this.deps;
    let epoch: number | null = null;
    let hosted = false;
    const t0 = performance.now();
    try {
      epoch = await directory.claim(h.shard);
      if (epoch === null) return this.giveUp(h, null);
      h.epoch = epoch;
      const t1 = performance.now();
      const status = await host.acquire(h.shard, epoch);
      hosted = true;
      // Serve at once: the claim already fenced every other writer. 'active' in the directory
      // is for operators and readiness, so it is written off the critical path; if this pod
      // lost the shard meanwhile, the next directory read sees the newer epoch and drops it.
      this.rows.set(h.shard, activeRow(h.shard, epoch, this.podId));
      h.to('serving');
      for (const item of h.takeHeld()) this.route(item.tenant, item.cmd, item.reply, item.hops);
      this.markActive(h, epoch);
      const ms = (t: number): number => Math.round((t - t0) * 10) / 10;
      log.info({ shard: h.shard, epoch, sequence: status.lastSequence, claimMs: ms(t1),
        adoptMs: status.adoptMs, replayMs: status.recoverMs, recoveredMs: ms(performance.now()) },
      'shard acquired');
      return true;
    } catch (err) {
      log.warn({ shard: h.shard, epoch, err: describe(err) }, 'shard acquire failed');
      if (hosted) await host.release(h.shard, false).catch(() => undefined);
      return this.giveUp(h, null);
    }
  }

  private markActive(h: ShardHandoff, epoch: number): void {
    this.deps.directory.markActive(h.shard, epoch).then(
      (ok) => {
        const stillOurs = h.state === 'serving' && h.epoch === epoch;
        if (!ok && stillOurs) this.lose(h, 'lost while recovering');
      },
      (err: unknown) => this.deps.log.warn({ shard: h.shard, err: describe(err) }, 'mark active'),
    );
  }

  /** acquiring → absent: the held commands go where the refreshed directory says. */
  private async giveUp(h: ShardHandoff, why: string | null): Promise<false> {
    if (why !== null) this.deps.log.warn({ shard: h.shard, why }, 'shard not acquired');
    h.to('absent');
    await this.refreshShard(h.shard).catch(() => undefined);
    for (const item of h.takeHeld()) this.forward(h.shard, item);
    return false;
  }

  /** serving → absent: another pod holds a newer epoch, or our worker for it died. */
  lose(h: ShardHandoff, why: string): void {
    if (h.state !== 'serving') return;
    h.to('absent');
    this.deps.log.warn({ shard: h.shard, epoch: h.epoch, why }, 'shard lost');
    if (this.deps.host.hosts(h.shard)) {
      this.deps.host.release(h.shard, false).then(
        (r) => {
          for (const q of r.queued) this.forward(h.shard, { ...q, hops: 0 });
        },
        () => undefined, // the worker failed closed: its host restarts it
      );
    }
  }

  /** The actor host lost shards (a worker died): claim them again at a new epoch. */
  onShardsLost(shards: number[]): void {
    for (const shard of shards) this.lose(this.handoffs[shard] as ShardHandoff, 'worker died');
    if (!this.closing) setTimeout(() => void this.tick(), 50).unref();
  }

  // ---- directory view ------------------------------------------------------------------

  /** Heartbeat, re-read the directory, claim what is ours to claim. One at a time. */
  tick(): Promise<void> {
    if (this.ticking !== null) return this.ticking;
    this.ticking = this.tickOnce().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async tickOnce(): Promise<void> {
    const { directory, log } = this.deps;
    const sentAt = performance.now();
    try {
      await directory.heartbeat(this.address);
      this.leaseOkUntil = sentAt + this.deps.config.leaseMs - this.deps.config.heartbeatMs;
      const [rows, pods] = await Promise.all([directory.list(), directory.pods()]);
      this.applyPods(pods);
      this.rows.clear();
      for (const row of rows) this.rows.set(row.shard, row);
      if (!this.closing) this.reconcile();
    } catch (err) {
      log.warn({ err: describe(err) }, 'cluster heartbeat or directory read failed');
    }
  }

  /** Re-reads the pod registry (a pod that joined since the last heartbeat). */
  async refreshPods(): Promise<void> {
    this.applyPods(await this.deps.directory.pods());
  }

  private applyPods(pods: PodRow[]): void {
    for (const p of pods) this.addresses.set(p.podId, p.address);
    this.live = pods.filter((p) => p.alive).map((p) => p.podId).sort();
  }

  /** Compares the directory with what this pod serves; claims or drops accordingly. */
  private reconcile(): void {
    for (const h of this.handoffs) this.reconcileShard(h);
  }

  private reconcileShard(h: ShardHandoff): void {
    const row = this.rows.get(h.shard);
    if (h.state === 'serving') {
      if (row === undefined || row.owner !== this.podId || row.epoch !== h.epoch) {
        this.lose(h, `directory says ${row?.owner ?? 'nobody'} at epoch ${row?.epoch ?? 0}`);
      }
      return;
    }
    if (h.state === 'absent' && this.shouldClaim(h.shard, row)) void this.ensureServing(h.shard);
  }

  private shouldClaim(shard: number, row: DirectoryRow | undefined): boolean {
    if (row !== undefined) {
      if (row.owner === this.podId) return true;
      if (row.state === 'moving' && row.target === this.podId) return true;
      if (this.live.includes(row.owner)) {
        this.orphanSince.delete(shard);
        return false;
      }
    }
    if (!this.live.includes(this.podId)) return false;
    // Spread orphans over the live pods; any pod takes one its preferred pod left alone.
    const preferred = this.live[shard % this.live.length] === this.podId;
    const now = performance.now();
    const since = this.orphanSince.get(shard) ?? now;
    this.orphanSince.set(shard, since);
    return preferred || now - since > 3 * this.deps.config.heartbeatMs;
  }

  private onNotify(shard: number): void {
    if (shard < 0 || shard >= this.handoffs.length) return;
    this.notified.add(shard);
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      const shards = [...this.notified];
      this.notified.clear();
      for (const s of shards) void this.refreshShard(s).catch(() => undefined);
    });
  }

  /** Re-reads one shard's row and acts on it (a change notification, or after a failure). */
  async refreshShard(shard: number): Promise<void> {
    const row = await this.deps.directory.get(shard);
    if (row === null) this.rows.delete(shard);
    else this.rows.set(shard, row);
    if (row !== null && !this.addresses.has(row.owner)) {
      this.applyPods(await this.deps.directory.pods());
    }
    if (!this.closing && this.started) this.reconcileShard(this.handoffs[shard] as ShardHandoff);
  }
}

export function activeRow(shard: number, epoch: number, owner: string): DirectoryRow {
  return { shard, epoch, owner, state: 'active', target: null };
}

export function failure(code: ErrorCode, message?: string): Outcome {
  return { ok: false, error: errorRecord(code, message) };
}

export function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
