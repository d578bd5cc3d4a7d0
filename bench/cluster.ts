// Multi-pod benchmark (issue 7): payments/s with 1, 2 and 3 pod processes sharing PostgreSQL
// (clients spread over all pods, so most requests are forwarded), and the pause a live shard
// move causes: extra latency of the moved shard's requests. pgbench TPC-B is the baseline.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { shardOf } from '../protocol/shard-key.js';
import { runLoad, setupTenants, type LoadStats } from '../test/support/cluster-load.js';
import { createTestDatabases, PG_HOST, PG_PORT, PG_USER } from '../test/support/pg.js';
import {
  admin,
  clusterFixture,
  removeFixture,
  startPodProcess,
  waitReady,
  type PodProcess,
} from '../test/support/pod.js';
import { fmtInt, median, percentile, printTable, writeResult } from './report.js';

const SHARDS = 16;
const TENANTS = Array.from({ length: 16 }, (_, i) => `bench-${i}`);
const CLIENTS = 24;
const MOVES_PER_RUN = 12;

export interface ClusterBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
}

interface RunResult {
  pods: number;
  paymentsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** per move: extra latency of the moved shard's requests over its usual p50 */
  pausesMs: number[];
  /** per move: the source's hand-off time (hold → target serving) */
  handoffMs: number[];
}

interface MoveWindow {
  shard: number;
  start: number;
  end: number;
  handoffMs: number;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function startCluster(count: number, workers: number, urls: string[]) {
  const fx = await clusterFixture({ pgUrls: urls, tenants: TENANTS, shardCount: SHARDS,
    env: { LOG_LEVEL: 'warn', LEDGER_WORKERS: String(workers) } });
  const pods: PodProcess[] = [];
  for (let i = 0; i < count; i++) {
    const pod = await startPodProcess(fx, `pod-${i}`);
    pods.push(pod);
    await waitReady(pod);
  }
  const first = pods[0] as PodProcess;
  await admin(first, 'POST', '/shards/rebalance', { wait: true });
  return { fx, pods };
}

/** Moves busy shards to the next pod, one at a time, while the load runs. */
async function moveWhileLoaded(pods: PodProcess[], moves: number): Promise<MoveWindow[]> {
  const busy = [...new Set(TENANTS.map((t) => shardOf(t, SHARDS)))];
  const windows: MoveWindow[] = [];
  const ids = pods.map((p) => p.id);
  for (let i = 0; windows.length < moves && i < moves * 3; i++) {
    const shard = busy[i % busy.length] as number;
    const list = await admin(pods[0] as PodProcess, 'GET', '/shards');
    const rows = list.body.shards as Array<{ shard: number; owner: string }>;
    const owner = rows.find((r) => r.shard === shard)?.owner ?? '';
    const to = ids[(ids.indexOf(owner) + 1) % ids.length] as string;
    const start = performance.now();
    const r = await admin(pods[i % pods.length] as PodProcess, 'POST', `/shards/${shard}/move`,
      { to, wait: true });
    const end = performance.now();
    if (r.status === 200) windows.push({ shard, start, end, handoffMs: Number(r.body.ms) });
    await sleep(300);
  }
  return windows;
}

/** Extra latency per move: worst request of the moved shard overlapping the move, minus p50. */
function pauses(stats: LoadStats, windows: MoveWindow[]): number[] {
  const shardOfTenant = new Map(TENANTS.map((t) => [t, shardOf(t, SHARDS)]));
  const out: number[] = [];
  for (const w of windows) {
    const mine = stats.latencies.filter((l) => shardOfTenant.get(l.tenant) === w.shard);
    const during = mine.filter((l) => l.start <= w.end && l.start + l.ms >= w.start);
    const calm = mine.filter((l) => !windows.some((x) =>
      l.start <= x.end + 50 && l.start + l.ms >= x.start - 50));
    const base = median(calm.map((l) => l.ms));
    const worst = Math.max(0, ...during.map((l) => l.ms));
    out.push(Math.max(0, worst - (Number.isNaN(base) ? 0 : base)));
  }
  return out;
}

async function runOnce(count: number, o: ClusterBenchOptions): Promise<RunResult> {
  const dbs = await createTestDatabases(2);
  const { fx, pods } = await startCluster(count, o.workers, dbs.urls);
  try {
    const urls = (): string[] => pods.map((p) => p.url);
    await setupTenants(urls, fx.tokens);
    let running = true;
    const t0 = performance.now();
    const calm = runLoad({ clients: CLIENTS, urls, tokens: fx.tokens, running: () => running,
      tag: 'calm' });
    await sleep(o.seconds * 1000);
    running = false;
    const stats = await calm;
    const seconds = (performance.now() - t0) / 1000;
    const sorted = stats.latencies.map((l) => l.ms).sort((a, b) => a - b);
    let windows: MoveWindow[] = [];
    let moved: LoadStats | null = null;
    if (count > 1) {
      let moving = true;
      const load = runLoad({ clients: CLIENTS, urls, tokens: fx.tokens, running: () => moving,
        tag: 'move' });
      await sleep(500);
      windows = await moveWhileLoaded(pods, MOVES_PER_RUN);
      moving = false;
      moved = await load;
    }
    return {
      pods: count,
      paymentsPerSecond: stats.latencies.length / seconds,
      latencyP50Ms: percentile(sorted, 50),
      latencyP99Ms: percentile(sorted, 99),
      pausesMs: moved === null ? [] : pauses(moved, windows),
      handoffMs: windows.map((w) => w.handoffMs),
    };
  } finally {
    for (const p of pods) await p.stop();
    removeFixture(fx, false);
    await dbs.drop();
  }
}

const execFileP = promisify(execFile);

/** pgbench TPC-B, scale 8, 16 clients, into a fresh database: the SQL baseline (tps). */
async function pgbenchTps(seconds: number): Promise<number> {
  const dbs = await createTestDatabases(1);
  const conn = ['-h', PG_HOST, '-p', String(PG_PORT), '-U', PG_USER];
  try {
    const db = dbs.names[0] as string;
    await execFileP('pgbench', ['-i', '-q', '-s', '8', ...conn, db]);
    const { stdout } = await execFileP('pgbench',
      ['-c', '16', '-j', '2', '-T', String(Math.max(1, Math.round(seconds))), ...conn, db]);
    return Number(/tps = ([\d.]+)/.exec(stdout)?.[1] ?? Number.NaN);
  } finally {
    await dbs.drop();
  }
}

function summarize(results: RunResult[], tps: number): Array<Record<string, string | number>> {
  const rows: Array<Record<string, string | number>> = [];
  for (const count of [1, 2, 3]) {
    const mine = results.filter((r) => r.pods === count);
    const pausesSorted = mine.flatMap((r) => r.pausesMs).sort((a, b) => a - b);
    const handoff = mine.flatMap((r) => r.handoffMs).sort((a, b) => a - b);
    const pps = median(mine.map((r) => r.paymentsPerSecond));
    rows.push({
      pods: count,
      'payments/s': fmtInt(pps),
      'vs pgbench': (pps / tps).toFixed(2),
      'p50 ms': median(mine.map((r) => r.latencyP50Ms)).toFixed(1),
      'p99 ms': median(mine.map((r) => r.latencyP99Ms)).toFixed(1),
      moves: pausesSorted.length,
      'pause p50 ms': count > 1 ? percentile(pausesSorted, 50).toFixed(0) : '-',
      'pause p99 ms': count > 1 ? percentile(pausesSorted, 99).toFixed(0) : '-',
      'hand-off p50 ms': count > 1 ? percentile(handoff, 50).toFixed(0) : '-',
      'hand-off p99 ms': count > 1 ? percentile(handoff, 99).toFixed(0) : '-',
    });
  }
  return rows;
}

export async function benchCluster(o: ClusterBenchOptions): Promise<void> {
  process.stdout.write(`cluster bench: ${o.runs} runs x ${o.seconds} s per pod count, ` +
    `${CLIENTS} HTTP clients over all pods, ${SHARDS} shards, ${o.workers} workers/pod, ` +
    `${MOVES_PER_RUN} moves per run (2+ pods); PostgreSQL journal, 2 databases\n`);
  const results: RunResult[] = [];
  for (let run = 0; run < o.runs; run++) {
    for (const count of [1, 2, 3]) {
      const r = await runOnce(count, o);
      results.push(r);
      process.stdout.write(`  run ${run + 1}, ${count} pod(s): ${fmtInt(r.paymentsPerSecond)}/s` +
        (count > 1 ? `, pause p99 ${fmtInt(percentile([...r.pausesMs].sort((a, b) => a - b), 99))}`
          + ' ms' : '') + '\n');
    }
  }
  const tps = await pgbenchTps(o.seconds);
  process.stdout.write(`  pgbench TPC-B: ${fmtInt(tps)} tps\n`);
  const rows = summarize(results, tps);
  printTable('cluster: throughput and move pause (medians over runs; pauses over all moves)',
    rows);
  writeResult('cluster', { options: o, pgbenchTps: tps, rows, results });
}

const isMain = process.argv[1]?.endsWith('/bench/cluster.ts') ||
  process.argv[1]?.endsWith('/bench/cluster.js');
if (isMain) {
  const arg = (name: string, fallback: number): number => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? Number(process.argv[i + 1]) : fallback;
  };
  benchCluster({ runs: arg('runs', 3), seconds: arg('seconds', 5), workers: arg('workers', 1) })
    .catch((err: unknown) => {
      process.stderr.write(`bench cluster: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
