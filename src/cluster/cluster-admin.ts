// Operator actions on the cluster, callable on any pod: list shards and pods, move a shard
// (relayed to its owner), rebalance. Never moves a shard it was not asked to move.

import type { ClusterNode } from './cluster-node.js';
import { describe } from './cluster-node.js';
import {
  INTERNAL_SHARDS_PATH,
  MoveError,
  planRebalance,
  postInternal,
  ShardMover,
  type MoveResult,
  type PlannedMove,
} from './shard-mover.js';

export interface AdminShardRow {
  shard: number;
  owner: string | null;
  epoch: number;
  lastSequence: number;
  state: string;
  target: string | null;
}

export interface AdminPodRow {
  podId: string;
  address: string;
  alive: boolean;
  shards: number;
}

export type MoveReply =
  | { shard: number; from: string; to: string; state: 'moving' | 'owned' }
  | (MoveResult & { state: 'moved' });

export class ClusterAdmin {
  readonly mover: ShardMover;
  /** moves started here and not finished (a shard moves once at a time per source) */
  private readonly moving = new Set<number>();

  constructor(private readonly node: ClusterNode) {
    this.mover = new ShardMover(node);
  }

  async shards(): Promise<AdminShardRow[]> {
    const directory = this.node.deps.directory;
    const [rows, sequences] = await Promise.all([directory.list(), directory.lastSequences()]);
    const byShard = new Map(rows.map((r) => [r.shard, r]));
    const out: AdminShardRow[] = [];
    for (let shard = 0; shard < this.node.handoffs.length; shard++) {
      const r = byShard.get(shard);
      out.push({
        shard,
        owner: r?.owner ?? null,
        epoch: r?.epoch ?? 0,
        lastSequence: sequences.get(shard) ?? 0,
        state: r?.state ?? 'unassigned',
        target: r?.target ?? null,
      });
    }
    return out;
  }

  async pods(): Promise<AdminPodRow[]> {
    const directory = this.node.deps.directory;
    const [pods, rows] = await Promise.all([directory.pods(), directory.list()]);
    return pods.map((p) => ({
      ...p,
      shards: rows.filter((r) => r.owner === p.podId).length,
    }));
  }

  /**
   * Moves `shard` to pod `to`. On the owner it runs the hand-off; elsewhere it relays the
   * request to the owner once (`relay`). `wait`: resolve when done, else once started.
   */
  async move(shard: number, to: string, wait: boolean, relay = true): Promise<MoveReply> {
    const node = this.node;
    await node.refreshShard(shard);
    if (!node.live.includes(to)) await node.refreshPods();
    const row = node.rows.get(shard);
    if (row === undefined) throw new MoveError('shard_unavailable', `shard ${shard} has no owner`);
    if (!node.live.includes(to) && to !== node.podId) {
      throw new MoveError('pod_not_found', `no live pod ${JSON.stringify(to)} in this cluster`);
    }
    if (row.owner === to && row.state === 'active') {
      return { shard, from: to, to, state: 'owned' };
    }
    if (row.owner !== node.podId) return this.relay(shard, row.owner, to, wait, relay);
    if (this.moving.has(shard)) throw new MoveError('shard_unavailable', 'a move is running');
    this.moving.add(shard);
    const run = this.mover.moveOut(shard, to).finally(() => this.moving.delete(shard));
    if (wait) return { ...(await run), state: 'moved' };
    run.catch((err: unknown) => {
      node.deps.log.warn({ shard, to, err: describe(err) }, 'move failed');
    });
    return { shard, from: node.podId, to, state: 'moving' };
  }

  private async relay(
    shard: number,
    owner: string,
    to: string,
    wait: boolean,
    relay: boolean,
  ): Promise<MoveReply> {
    const node = this.node;
    const address = node.addresses.get(owner);
    const token = node.deps.config.token;
    if (!relay || address === undefined || token === null || !node.live.includes(owner)) {
      throw new MoveError('shard_unavailable', `shard ${shard} is owned by ${owner}; retry`);
    }
    const path = `${INTERNAL_SHARDS_PATH}/${shard}/move`;
    return (await postInternal(address, token, path, { to, wait })) as unknown as MoveReply;
  }

  /** Plans even spread over the live pods and runs the moves one after another. */
  async rebalance(wait: boolean): Promise<PlannedMove[]> {
    const node = this.node;
    await node.tick();
    const owners = new Map<number, string>();
    for (const [shard, row] of node.rows) {
      if (node.live.includes(row.owner)) owners.set(shard, row.owner);
    }
    const plan = planRebalance(owners, node.live);
    const run = (async () => {
      for (const m of plan) {
        await this.move(m.shard, m.to, true).catch((err: unknown) => {
          node.deps.log.warn({ ...m, err: describe(err) }, 'rebalance move failed');
        });
      }
    })();
    if (wait) await run;
    return plan;
  }
}
