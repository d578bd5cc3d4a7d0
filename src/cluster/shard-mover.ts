// Live shard moves: the source holds new commands, drains and releases the shard, marks it
// 'moving' to the target, the target claims epoch + 1 and recovers, the source forwards what
// it held. Also plans rebalancing. Never lets two pods serve a shard (the journal fences).

import type { ErrorCode } from '../../protocol/errors.js';
import type { ClusterNode } from './cluster-node.js';
import { activeRow, describe } from './cluster-node.js';
import type { HeldCommand, ShardHandoff } from './handoff.js';

export const INTERNAL_SHARDS_PATH = '/internal/v1/shards';
const CONTROL_TIMEOUT_MS = 30_000;

export class MoveError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MoveError';
  }
}

export interface MoveResult {
  shard: number;
  from: string;
  to: string;
  epoch: number;
  /** wall time of the hand-off, and how many commands were held meanwhile */
  ms: number;
  held: number;
}

export interface PlannedMove {
  shard: number;
  from: string;
  to: string;
}

/** POSTs JSON to a peer's internal API; resolves with the parsed 2xx body. */
export async function postInternal(
  address: string,
  token: string,
  path: string,
  body: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(new URL(path, address), {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(CONTROL_TIMEOUT_MS),
  });
  const parsed = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (res.status >= 300) {
    const error = parsed.error as { code?: ErrorCode; message?: string } | undefined;
    throw new MoveError(error?.code ?? 'shard_unavailable', error?.message ?? `${res.status}`);
  }
  return parsed;
}

export class ShardMover {
  constructor(private readonly node: ClusterNode) {}

  /**
   * Moves a shard this pod serves to pod `to` and resolves when the target serves it (or
   * the move was aborted and this pod serves it again). Throws MoveError when it cannot start.
   */
  async moveOut(shard: number, to: string): Promise<MoveResult> {
    const node = this.node;
    const h = node.handoffs[shard];
    const token = node.deps.config.token;
    if (h === undefined) throw new MoveError('invalid_request', `no shard ${shard}`);
    if (h.state !== 'serving') {
      throw new MoveError('shard_unavailable', `shard ${shard} is ${h.state} on ${node.podId}`);
    }
    const address = node.addresses.get(to);
    if (address === undefined || !node.live.includes(to)) {
      throw new MoveError('pod_not_found', `no live pod ${JSON.stringify(to)}`);
    }
    if (token === null) throw new MoveError('shard_unavailable', 'LEDGER_CLUSTER_TOKEN is unset');
    const t0 = performance.now();
    h.to('handing-off');
    const epoch = h.epoch;
    const released = await this.release(h);
    if (!released) return this.finish(h, to, t0, 'failed', 'the worker failed while releasing');
    if (!(await node.deps.directory.markMoving(shard, epoch, to).catch(() => false))) {
      return this.finish(h, to, t0, 'failed', 'lost the shard while releasing it');
    }
    node.rows.set(shard, { shard, epoch, owner: node.podId, state: 'moving', target: to });
    const marked = performance.now();
    try {
      const body = await postInternal(address, token, `${INTERNAL_SHARDS_PATH}/${shard}/acquire`, {
        from: node.podId,
      });
      const newEpoch = Number(body.epoch);
      node.deps.log.info({ shard, to, markedMs: Math.round(marked - t0),
        acquiredMs: Math.round(performance.now() - t0) }, 'shard handed over');
      node.rows.set(shard, activeRow(shard, newEpoch, to));
      return this.finish(h, to, t0, 'ok', null, newEpoch);
    } catch (err) {
      node.deps.log.warn({ shard, to, err: describe(err) }, 'move target failed; reclaiming');
      return this.reclaim(h, to, t0);
    }
  }

  /** Releases the shard from the worker; queued-but-unsent commands join the held ones. */
  private async release(h: ShardHandoff): Promise<boolean> {
    try {
      const r = await this.node.deps.host.release(h.shard, this.node.deps.config.sharedSnapshots);
      const queued: HeldCommand[] = r.queued.map((q) => ({ ...q, hops: 0 }));
      h.held = queued.concat(h.held); // they arrived first
      return true;
    } catch {
      return false;
    }
  }

  /** The target did not confirm: take the shard back if the directory still lets us. */
  private async reclaim(h: ShardHandoff, to: string, t0: number): Promise<MoveResult> {
    const node = this.node;
    const epoch = await node.deps.directory.claim(h.shard).catch(() => null);
    if (epoch === null) return this.finish(h, to, t0, 'failed', 'target failed, shard taken');
    try {
      await node.deps.host.acquire(h.shard, epoch);
      if (!(await node.deps.directory.markActive(h.shard, epoch))) throw new Error('lost again');
    } catch (err) {
      await node.deps.host.release(h.shard, false).catch(() => undefined);
      return this.finish(h, to, t0, 'failed', `reclaim failed: ${describe(err)}`);
    }
    h.epoch = epoch;
    node.rows.set(h.shard, activeRow(h.shard, epoch, node.podId));
    h.to('serving');
    const held = h.takeHeld();
    for (const item of held) node.route(item.tenant, item.cmd, item.reply, item.hops);
    return this.result(h, to, t0, epoch, held.length, 'aborted');
  }

  /** handing-off → absent: held commands follow the shard (or the refreshed directory). */
  private async finish(
    h: ShardHandoff,
    to: string,
    t0: number,
    outcome: 'ok' | 'failed',
    why: string | null,
    epoch = 0,
  ): Promise<MoveResult> {
    const node = this.node;
    h.to('absent');
    if (outcome === 'failed') {
      node.deps.log.warn({ shard: h.shard, to, why }, 'move failed');
      await node.refreshShard(h.shard).catch(() => undefined);
    }
    const held = h.takeHeld();
    for (const item of held) node.forward(h.shard, item);
    const result = this.result(h, to, t0, epoch, held.length, outcome);
    if (outcome === 'failed') throw new MoveError('shard_unavailable', why ?? 'move failed');
    return result;
  }

  private result(
    h: ShardHandoff,
    to: string,
    t0: number,
    epoch: number,
    held: number,
    outcome: 'ok' | 'aborted' | 'failed',
  ): MoveResult {
    const ms = performance.now() - t0;
    this.node.deps.metrics.move(ms / 1000, outcome);
    this.node.deps.log.info({ shard: h.shard, to, epoch, ms: Math.round(ms), held, outcome },
      'shard move finished');
    return { shard: h.shard, from: this.node.podId, to, epoch, ms, held };
  }
}

/**
 * Moves that spread shards evenly over the live pods: each pod ends with floor or ceil of
 * shards / pods, moving as few shards as possible. Shards without a live owner are left to
 * failover. Deterministic for the same input.
 */
export function planRebalance(
  owners: ReadonlyMap<number, string>,
  live: readonly string[],
): PlannedMove[] {
  if (live.length === 0) return [];
  const pods = [...live].sort();
  const byPod = new Map<string, number[]>(pods.map((p) => [p, []]));
  for (const [shard, owner] of [...owners].sort((a, b) => a[0] - b[0])) {
    byPod.get(owner)?.push(shard);
  }
  const total = [...byPod.values()].reduce((n, list) => n + list.length, 0);
  const base = Math.floor(total / pods.length);
  let extra = total % pods.length;
  const quota = new Map<string, number>();
  // the pods holding most keep the +1 quotas, so fewer shards move
  const held = (p: string): number => byPod.get(p)?.length ?? 0;
  for (const p of [...pods].sort((a, b) => held(b) - held(a))) {
    quota.set(p, base + (extra > 0 ? 1 : 0));
    if (extra > 0) extra--;
  }
  const spare: Array<{ shard: number; from: string }> = [];
  for (const p of pods) {
    const list = byPod.get(p) ?? [];
    while (list.length > (quota.get(p) ?? 0)) spare.push({ shard: list.pop() as number, from: p });
  }
  const moves: PlannedMove[] = [];
  for (const p of pods) {
    const list = byPod.get(p) ?? [];
    while (list.length < (quota.get(p) ?? 0) && spare.length > 0) {
      const s = spare.shift() as { shard: number; from: string };
      list.push(s.shard);
      moves.push({ shard: s.shard, from: s.from, to: p });
    }
  }
  return moves;
}
