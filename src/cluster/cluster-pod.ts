// Wires a pod for multi-pod mode: actor host in dynamic mode (no shard until claimed), the
// shard directory, the cluster node that routes, and the operator actions. No policy here.

import type { Logger } from 'pino';
import { ShardDirectory } from '../../persistence/shard-directory.js';
import { startActorHost } from '../../shards/actor-host.js';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import { checkShardLayout } from '../shard-layout.js';
import { storageFor } from '../storage.js';
import { ClusterAdmin } from './cluster-admin.js';
import type { ClusterConfig } from './cluster-config.js';
import { ClusterNode } from './cluster-node.js';

export interface ClusterLedger {
  node: ClusterNode;
  admin: ClusterAdmin;
}

export async function startClusterLedger(
  config: Config,
  cluster: ClusterConfig,
  deps: { metrics: Metrics; log: Logger; workerUrl: URL },
): Promise<ClusterLedger> {
  const { metrics, log } = deps;
  await checkShardLayout(config.dataDir, config.shardCount);
  let node: ClusterNode | null = null;
  const host = await startActorHost({
    workerUrl: deps.workerUrl,
    storage: storageFor(config),
    // every acquire carries the epoch the directory claimed; open() only migrates
    epoch: 0,
    shardCount: config.shardCount,
    workers: config.workers,
    snapshotEvery: config.snapshotEvery,
    snapshotSeconds: config.snapshotSeconds,
    dynamic: true,
    onShardsLost: (shards) => node?.onShardsLost(shards),
    onGroupCommit: (rows, seconds) => metrics.groupCommit(rows, seconds),
    onWorkerError: (workerIndex, err) => log.error({ err, workerIndex }, 'shard worker failed'),
  });
  const directory = new ShardDirectory(cluster.pgUrls, {
    podId: cluster.podId,
    leaseMs: cluster.leaseMs,
  });
  node = new ClusterNode({ config: cluster, host, directory, log, metrics });
  const admin = new ClusterAdmin(node);
  node.cluster = admin;
  return { node, admin };
}

/** The address other pods use: LEDGER_ADVERTISE_URL, else this machine's loopback. */
export function advertiseAddress(cluster: ClusterConfig, port: number): string {
  return cluster.advertiseUrl ?? `http://127.0.0.1:${port}`;
}
