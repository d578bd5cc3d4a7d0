// Wires one pod: tenant registry, actor host (ledger), metrics, HTTP and WebSocket gateways on
// uWebSockets.js. Shutdown stops accepting, drains what is in flight, then closes the ledger.

import pino, { type Logger } from 'pino';
import uWS from 'uWebSockets.js';
import { settleFileJournal } from '../persistence/journal-file.js';
import { startActorHost } from '../shards/actor-host.js';
import type { Config } from './config.js';
import type { GatewayContext } from './gateway/exchange.js';
import { mountHttp } from './gateway/http.js';
import { Traffic, type LedgerHost } from './gateway/traffic.js';
import { DEFAULT_WS_LIMITS, mountWs, type WsLimits } from './gateway/ws.js';
import type { ClusterConfig } from './cluster/cluster-config.js';
import { advertiseAddress, startClusterLedger, type ClusterLedger } from './cluster/cluster-pod.js';
import { mountInternal } from './cluster/internal-api.js';
import { Metrics } from './metrics.js';
import { RateLimiter } from './rate-limit.js';
import { relayEnabled, startRelay } from './relay.js';
import { checkClusterShardLayout, checkShardLayout } from './shard-layout.js';
import { openEpochFor, storageFor } from './storage.js';
import { FileTenantRegistry, type TenantRegistry } from './tenants.js';
import { PgTenantRegistry } from './tenants-pg.js';

export interface ServerOptions {
  logger?: Logger;
  /** a ledger to use instead of starting the actor host (tests, embedding) */
  ledger?: LedgerHost;
  /** how long shutdown waits for in-flight requests before closing anyway */
  drainTimeoutMs?: number;
  /** per-socket WebSocket bounds (tests shrink them to provoke backpressure) */
  wsLimits?: Partial<WsLimits>;
  /** multi-pod mode (src/cluster/cluster-config.ts); absent: this pod owns every shard */
  cluster?: ClusterConfig | null;
}

export interface Server {
  /** the bound port (the OS's choice when config.port is 0) */
  port: number;
  /** base URL on 127.0.0.1 (or the configured host when it is not a wildcard) */
  url: string;
  tenants: TenantRegistry;
  ledger: LedgerHost;
  metrics: Metrics;
  /** Stop accepting, answer what is in flight, close sockets and the ledger. Idempotent. */
  close(): Promise<void>;
}

const DRAIN_TIMEOUT_MS = 10_000;

function workerUrl(): URL {
  // Under tsx / vitest this module is .ts and so is its sibling; built, both are .js.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./shard-worker.${ext}`, import.meta.url);
}

async function startLedger(config: Config, metrics: Metrics, log: Logger): Promise<LedgerHost> {
  const storage = storageFor(config);
  if (storage.kind === 'file') {
    // Before any worker opens its shards: write-ahead logs of an earlier run, whatever its
    // worker layout, go back into the shard files (persistence/journal-wal.ts).
    const settled = await settleFileJournal(storage.dataDir);
    if (settled.length > 0) {
      log.info({ event: 'journal_logs_settled', shards: settled.length }, 'journal logs settled');
    }
  }
  return startActorHost({
    workerUrl: workerUrl(),
    storage,
    epoch: openEpochFor(storage),
    shardCount: config.shardCount,
    workers: config.workers,
    snapshotEvery: config.snapshotEvery,
    snapshotSeconds: config.snapshotSeconds,
    onGroupCommit: (rows, seconds) => metrics.groupCommit(rows, seconds),
    onWorkerError: (workerIndex, err) => log.error({ err, workerIndex }, 'shard worker failed'),
  });
}

/**
 * With LEDGER_PG_URLS, tenants live in database 0, so every pod knows every tenant and token
 * (src/tenants-pg.ts); embedded mode keeps them in `${dataDir}/tenants.json`.
 */
function openTenants(config: Config, log: Logger): Promise<TenantRegistry> {
  const url = config.pgUrls[0];
  if (url === undefined) return FileTenantRegistry.open(config.dataDir);
  return PgTenantRegistry.open({ url, podId: config.podId, log, dataDir: config.dataDir });
}

function listen(app: uWS.TemplatedApp, host: string, port: number): Promise<uWS.us_listen_socket> {
  return new Promise((resolve, reject) => {
    app.listen(host, port, (socket) => {
      if (socket === false) reject(new Error(`cannot listen on ${host}:${port}`));
      else resolve(socket);
    });
  });
}

function baseUrl(host: string, port: number): string {
  const shown = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host;
  return `http://${shown.includes(':') ? `[${shown}]` : shown}:${port}`;
}

/** Registers the pod and claims its shards once it can be reached; undoes all on failure. */
async function joinCluster(
  cluster: ClusterLedger,
  address: string,
  socket: uWS.us_listen_socket,
): Promise<void> {
  try {
    await cluster.node.start(address);
  } catch (err) {
    uWS.us_listen_socket_close(socket);
    await cluster.node.close().catch(() => undefined);
    throw err;
  }
}

/** The shard count never changes: refuse to start against data written with another. */
async function checkLayouts(config: Config): Promise<void> {
  await checkShardLayout(config.dataDir, config.shardCount);
  const db0 = config.pgUrls[0];
  if (db0 !== undefined) await checkClusterShardLayout(db0, config.shardCount);
}

export async function startServer(config: Config, opts: ServerOptions = {}): Promise<Server> {
  const log = opts.logger ?? pino({ level: config.logLevel });
  const tenants = await openTenants(config, log);
  const metrics = new Metrics();
  let ledger: LedgerHost;
  let cluster: ClusterLedger | null;
  try {
    if (!opts.ledger) await checkLayouts(config);
    cluster = opts.ledger || !opts.cluster ? null
      : await startClusterLedger(config, opts.cluster, { metrics, log, workerUrl: workerUrl() });
    ledger = opts.ledger ?? cluster?.node ?? (await startLedger(config, metrics, log));
  } catch (err) {
    await tenants.close();
    throw err;
  }
  metrics.setSources({
    queueDepth: () => ledger.queueDepth?.() ?? 0,
    journalLag: () => ledger.journalLag?.() ?? 0,
  });
  const traffic = new Traffic();
  const limiter = new RateLimiter(config.rateLimitPerSecond);
  const ctx: GatewayContext = { config, tenants, ledger, metrics, limiter, traffic, log };
  const app = uWS.App();
  // before the HTTP catch-all, so upgrades reach it
  const ws = mountWs(app, ctx, { ...DEFAULT_WS_LIMITS, ...opts.wsLimits });
  if (cluster) mountInternal(app, ctx, cluster.node, cluster.admin);
  mountHttp(app, ctx);
  let socket: uWS.us_listen_socket;
  try {
    socket = await listen(app, config.host, config.port);
  } catch (err) {
    await ledger.close();
    await tenants.close();
    throw err;
  }
  const port = uWS.us_socket_local_port(socket as uWS.us_socket);
  if (cluster && opts.cluster) {
    await joinCluster(cluster, advertiseAddress(opts.cluster, port), socket).catch(
      async (err: unknown) => {
        await tenants.close();
        throw err;
      });
  }
  // Kafka events from the committed journal, beside the write path (never blocks a payment).
  const relay = relayEnabled(config) ? startRelay(config, log, metrics) : null;
  const drainTimeoutMs = opts.drainTimeoutMs ?? DRAIN_TIMEOUT_MS;
  let closing: Promise<void> | null = null;
  const close = async (): Promise<void> => {
    traffic.shuttingDown = true;
    uWS.us_listen_socket_close(socket);
    const drained = await traffic.drained(drainTimeoutMs);
    if (!drained) log.warn({ inflight: traffic.inflight }, 'shutdown: drain timed out');
    ws.closeAll(1001, 'shutting down');
    await ledger.close();
    await relay?.close();
    await tenants.close();
  };
  return {
    port,
    url: baseUrl(config.host, port),
    tenants,
    ledger,
    metrics,
    close: () => (closing ??= close()),
  };
}
