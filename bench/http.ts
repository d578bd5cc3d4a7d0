// End-to-end benchmark of one real pod over HTTP and WebSocket, driven by a separate load
// process (load-client.ts): max single payments/s, p99 in an open loop at 80% of it, batches;
// embedded journal and (BENCH_PG=1 or --pg) PostgreSQL; pgbench TPC-B measured in the same run
// as the SQL baseline. Prints a table and writes JSON; asserts nothing about timing.

import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { LedgerHttpClient } from '../protocol/client.js';
import { shardOf } from '../protocol/shard-key.js';
import { PG_HOST, PG_PORT, PG_USER, createTestDatabases } from '../test/support/pg.js';
import type { LoadMode, LoadReport } from './load-client.js';
import { WINDOW_EDGES } from './load-window.js';
import { procCpuSeconds, startPod, type Pod } from './pod.js';
import { fmtInt, machine, median, printTable, writeResult } from './report.js';

export interface HttpBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
  /** also (or only) run against PostgreSQL shard databases; default from BENCH_PG */
  pg?: 'no' | 'also' | 'only';
}

type Storage = 'embedded' | 'postgresql';

interface Phase {
  key: string;
  name: string;
  mode: LoadMode;
  connections: number;
  inflight: number;
  batch: number;
  /** open loop at this fraction of the first phase's measured requests/s */
  rateOfMax?: number;
  target: string;
}

/** What the pod did during one phase, from /proc and its /metrics. */
interface PodSide {
  cpuCores: number;
  mainThreadCores: number;
  /** PostgreSQL server processes (the pod's commits, and anyone else's queries) */
  postgresCores: number;
  /** busy cores of the whole machine minus pod, load generator and PostgreSQL: interference */
  otherCores: number;
  commits: number;
  rowsPerCommit: number;
  commitMsMean: number;
  /** mean time from a request's arrival at the pod to its reply (payment_response_time) */
  serverMsMean: number;
  /**
   * the bound of the histogram bucket holding the 99th percentile of that time, in ms: where
   * the tail is (in the pod, or between the pod and the load process)
   */
  serverP99Within: number;
}

interface PhaseRun {
  load: LoadReport;
  pod: PodSide;
}

interface Run {
  storage: Storage;
  loadavg: number[];
  phases: Record<string, PhaseRun>;
  pgbenchTps: number;
}

/** BENCH_TENANTS: tenants paying, each in a shard of its own (at most the shard count) */
const TENANTS = Number(process.env.BENCH_TENANTS ?? 16);
const ACCOUNTS = 100;
/** BENCH_SHARDS: the pod's LEDGER_SHARDS (tenants go to distinct shards: at most this many) */
const SHARDS = Number(process.env.BENCH_SHARDS ?? 64);
const PGBENCH = { scale: 8, clients: 8, threads: 2 };
const PG_SHARD_DATABASES = 2;
const CLOCK_TICKS_PER_SECOND = 100;
const HTTP_CONNECTIONS = Number(process.env.BENCH_HTTP_CONNECTIONS ?? 1024);

const ALL_PHASES: readonly Phase[] = [
  { key: 'httpMax', name: 'HTTP single, closed loop (max)', mode: 'http',
    connections: HTTP_CONNECTIONS, inflight: 1, batch: 1, target: '>= 50,000/s' },
  { key: 'httpOpen', name: 'HTTP single, open loop at 80% of max', mode: 'http',
    connections: HTTP_CONNECTIONS, inflight: 1, batch: 1, rateOfMax: 0.8,
    target: 'p99 <= 20 ms' },
  { key: 'httpBatch100', name: 'HTTP batch 100, closed loop', mode: 'http-batch',
    connections: 8, inflight: 1, batch: 100, target: '-' },
  { key: 'ws100', name: 'WS transferBatch 100, closed loop', mode: 'ws',
    connections: 4, inflight: 8, batch: 100, target: '>= 250,000/s' },
  { key: 'ws8190', name: 'WS transferBatch 8190, closed loop', mode: 'ws',
    connections: 2, inflight: 2, batch: 8190, target: '>= 250,000/s' },
];

/**
 * BENCH_HTTP_OPEN=0.2,0.5,0.8 runs the open loop at each of these fractions of the max rate
 * (a latency curve) in place of the one at 80%.
 */
function openPhases(fractions: string | undefined): Phase[] {
  const open = ALL_PHASES.find((p) => p.key === 'httpOpen') as Phase;
  if (fractions === undefined) return [open];
  return fractions.split(',').map(Number).filter((f) => f > 0 && f <= 1).map((f) => ({
    ...open, key: f === 0.8 ? 'httpOpen' : `httpOpen${Math.round(f * 100)}`,
    name: `HTTP single, open loop at ${Math.round(f * 100)}% of max`, rateOfMax: f,
    target: f === 0.8 ? open.target : '-' }));
}

/** BENCH_HTTP_PHASES=httpMax,ws100 runs only those phases (profiling one path at a time). */
const PHASES: readonly Phase[] = ((only) => ALL_PHASES
  .filter((p) => only === undefined || only.split(',').includes(p.key))
  .flatMap((p) => p.key === 'httpOpen' ? openPhases(process.env.BENCH_HTTP_OPEN) : [p]))(
  process.env.BENCH_HTTP_PHASES);

/** PostgreSQL targets of issue 4, as multiples of pgbench TPS. */
const PG_TARGETS: Readonly<Record<string, string>> = {
  httpMax: '>= 10x pgbench', ws100: '>= 40x pgbench', ws8190: '>= 40x pgbench',
};

function loadClientPath(): { script: string; nodeArgs: string[] } {
  const ts = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(new URL(`./load-client.${ts ? 'ts' : 'js'}`, import.meta.url));
  return { script, nodeArgs: ts ? ['--import', 'tsx'] : [] };
}

type WindowEdge = keyof typeof WINDOW_EDGES;

/**
 * Runs the load generator as its own process and returns its JSON report; `onEdge` is told
 * when its measured window opens and closes (WINDOW_EDGES lines before the report).
 */
function runLoadProcess(args: string[], onEdge: (edge: WindowEdge) => void): Promise<LoadReport> {
  const { script, nodeArgs } = loadClientPath();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    let seen = 0; // characters of `out` already looked at for edge lines
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString('utf8');
      for (let nl = out.indexOf('\n', seen); nl >= 0; nl = out.indexOf('\n', seen)) {
        const line = out.slice(seen, nl);
        seen = nl + 1;
        if (line === WINDOW_EDGES.open) onEdge('open');
        else if (line === WINDOW_EDGES.close) onEdge('close');
      }
    });
    child.once('error', reject);
    child.once('exit', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || line === '') return reject(new Error(`load-client exited ${code}`));
      resolve(JSON.parse(line) as LoadReport);
    });
  });
}

/** Tenant ids in distinct shards, spread evenly over the pod's workers (shard % workers). */
export function chooseTenants(count: number, shards: number, workers: number): string[] {
  const perWorker = new Array<number>(workers).fill(0);
  const usedShards = new Set<number>();
  const chosen: string[] = [];
  for (let i = 0; chosen.length < count && i < 100_000; i++) {
    const id = `bench-${i}`;
    const shard = shardOf(id, shards);
    const w = shard % workers;
    if (usedShards.has(shard) || (perWorker[w] as number) >= Math.ceil(count / workers)) continue;
    usedShards.add(shard);
    perWorker[w] = (perWorker[w] as number) + 1;
    chosen.push(id);
  }
  return chosen;
}

/** Tenants with a funding account (allowNegative) and ACCOUNTS payees each; their tokens. */
async function setupTenants(pod: Pod, workers: number): Promise<string[]> {
  const ids = chooseTenants(Math.max(TENANTS, workers), SHARDS, workers);
  return Promise.all(ids.map(async (id) => {
    const token = await pod.createTenant(id);
    const client = new LedgerHttpClient(pod.url, token);
    const accounts = [{ id: 'fund', currencyCode: 'USD', allowNegative: true }];
    for (let a = 0; a < ACCOUNTS; a++) accounts.push({ id: `a${a}`, currencyCode: 'USD',
      allowNegative: false });
    for (const account of accounts) {
      const r = await client.createAccount(account);
      if (r.status !== 201) throw new Error(`setup ${id}/${account.id}: ${r.status}`);
    }
    return token;
  }));
}

/** Cumulative counts of a histogram's buckets by bound (seconds), summed over label sets. */
function histogramBuckets(text: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(
    new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} ([0-9.e+-]+)$`, 'gm'))) {
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/** The bound (ms) of the first bucket holding `q` of what was observed between two scrapes. */
function bucketQuantileMs(before: string, after: string, name: string, q: number): number {
  const a = histogramBuckets(after, name);
  const b = histogramBuckets(before, name);
  const total = (a.get(Infinity) ?? 0) - (b.get(Infinity) ?? 0);
  if (total <= 0) return Number.NaN;
  for (const le of [...a.keys()].sort((x, y) => x - y)) {
    if ((a.get(le) ?? 0) - (b.get(le) ?? 0) >= q * total) return le * 1000;
  }
  return Infinity;
}

/** Sum and count of one Prometheus histogram in /metrics text, over all its label sets. */
function histogramTotals(text: string, name: string): { sum: number; count: number } {
  const read = (suffix: string): number => {
    let total = 0;
    for (const m of text.matchAll(
      new RegExp(`^${name}_${suffix}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'gm'))) {
      total += Number(m[1]);
    }
    return total;
  };
  return { sum: read('sum'), count: read('count') };
}

/** Busy CPU seconds of the whole machine (all cores), from the first line of /proc/stat. */
function machineBusySeconds(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]?.trim().split(/\s+/) ?? [];
  // user nice system idle iowait irq softirq steal: busy = all but idle and iowait
  const v = cpu.slice(1, 9).map(Number);
  const busy = v.reduce((a, b) => a + b, 0) - (v[3] ?? 0) - (v[4] ?? 0);
  return busy / CLOCK_TICKS_PER_SECOND;
}

/** CPU seconds of every process named `postgres` right now (backends come and go). */
function postgresCpuSeconds(): number {
  let total = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(`/proc/${name}/comm`, 'utf8').trim() !== 'postgres') continue;
    } catch {
      continue; // exited between readdir and read
    }
    const s = procCpuSeconds(`/proc/${name}/stat`);
    if (!Number.isNaN(s)) total += s;
  }
  return total;
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

/** The pod's counters at one moment: CPU (all, main thread), the machine's, PostgreSQL's. */
interface Counters {
  at: number;
  cpu: number;
  main: number;
  busy: number;
  pg: number;
  metrics: Promise<string>;
}

function counters(pod: Pod): Counters {
  const metrics = pod.metrics();
  // Awaited (and so reported) in podSide; until then a failure must not count as unhandled.
  metrics.catch(() => undefined);
  return { at: performance.now(), cpu: pod.cpuSeconds(), main: pod.mainThreadCpuSeconds(),
    busy: machineBusySeconds(), pg: postgresCpuSeconds(), metrics };
}

/**
 * Runs a load process and reads the pod's side over its measured window (warm-up and the
 * process's start-up left out); over the whole run if the window edges did not arrive.
 */
async function podSide(pod: Pod,
  run: (onEdge: (edge: WindowEdge) => void) => Promise<LoadReport>): Promise<PhaseRun> {
  const edges: Partial<Record<WindowEdge, Counters>> = {};
  const start = counters(pod);
  const load = await run((edge) => {
    if (edge === 'close' && edges.open === undefined) return;
    edges[edge] = counters(pod);
  });
  const windowed = edges.open !== undefined && edges.close !== undefined &&
    Number.isFinite(load.clientCpuSecondsWindow);
  const from = windowed ? edges.open as Counters : start;
  const to = windowed ? edges.close as Counters : counters(pod);
  const wall = (to.at - from.at) / 1000;
  const cpuCores = (to.cpu - from.cpu) / wall;
  const mainThreadCores = (to.main - from.main) / wall;
  const postgresCores = Math.max(0, (to.pg - from.pg) / wall);
  const loadCores = (windowed ? load.clientCpuSecondsWindow : load.clientCpuSecondsTotal) / wall;
  const otherCores = (to.busy - from.busy) / wall - cpuCores - loadCores - postgresCores;
  const [before, after] = await Promise.all([from.metrics, to.metrics, start.metrics,
    edges.open?.metrics, edges.close?.metrics]);
  const delta = (name: string): { sum: number; count: number } => {
    const a = histogramTotals(after, name);
    const b = histogramTotals(before, name);
    return { sum: a.sum - b.sum, count: a.count - b.count };
  };
  const rows = delta('ledger_group_commit_rows');
  const secs = delta('ledger_group_commit_seconds');
  const served = delta('payment_response_time_seconds');
  return { load, pod: {
    cpuCores: round2(cpuCores), mainThreadCores: round2(mainThreadCores),
    postgresCores: round2(postgresCores), otherCores: round2(Math.max(0, otherCores)),
    commits: rows.count,
    rowsPerCommit: rows.count > 0 ? rows.sum / rows.count : Number.NaN,
    commitMsMean: secs.count > 0 ? (secs.sum / secs.count) * 1000 : Number.NaN,
    serverMsMean: served.count > 0 ? (served.sum / served.count) * 1000 : Number.NaN,
    serverP99Within: bucketQuantileMs(before, after, 'payment_response_time_seconds', 0.99),
  } };
}

async function runPhases(pod: Pod, tokens: string[], o: HttpBenchOptions, tag: string) {
  const phases: Record<string, PhaseRun> = {};
  for (const p of PHASES) {
    const maxRate = phases.httpMax?.load.requestsPerSec ?? 0;
    const rate = p.rateOfMax === undefined ? 0 : Math.round(maxRate * p.rateOfMax);
    const args = ['--url', pod.url, '--tokens', tokens.join(','), '--mode', p.mode,
      '--connections', String(p.connections), '--inflight', String(p.inflight),
      '--batch', String(p.batch), '--rate', String(rate), '--seconds', String(o.seconds),
      '--warmup', '1', '--accounts', String(ACCOUNTS), '--tag', `${tag}${p.key}-`];
    phases[p.key] = await podSide(pod, (onEdge) => runLoadProcess(args, onEdge));
    const l = phases[p.key]?.load;
    if (l !== undefined) {
      process.stdout.write(`  ${p.name}${rate > 0 ? ` @ ${fmtInt(rate)} req/s` : ''}: ` +
        `${fmtInt(l.paymentsPerSec)} payments/s, p99 ${l.latencyMs.p99} ms, ` +
        `pod ${phases[p.key]?.pod.cpuCores} cores (main ${phases[p.key]?.pod.mainThreadCores}), ` +
        `load ${l.clientCpuCores}, postgres ${phases[p.key]?.pod.postgresCores}, ` +
        `other ${phases[p.key]?.pod.otherCores}, ` +
        `in pod ${phases[p.key]?.pod.serverMsMean.toFixed(2)} ms mean, ` +
        `p99 <= ${phases[p.key]?.pod.serverP99Within} ms` +
        `${Object.keys(l.errors).length > 0 ? `; errors ${JSON.stringify(l.errors)}` : ''}\n`);
    }
  }
  return phases;
}

const execFileP = promisify(execFile);

/** pgbench TPC-B (its default script), scale 8, into a fresh database; returns tps. */
async function runPgbench(seconds: number): Promise<number> {
  const dbs = await createTestDatabases(1);
  const conn = ['-h', PG_HOST, '-p', String(PG_PORT), '-U', PG_USER];
  try {
    const db = dbs.names[0] as string;
    await execFileP('pgbench', ['-i', '-q', '-s', String(PGBENCH.scale), ...conn, db]);
    const { stdout } = await execFileP('pgbench', ['-c', String(PGBENCH.clients),
      '-j', String(PGBENCH.threads), '-T', String(Math.max(1, Math.round(seconds))), ...conn, db]);
    const m = /tps = ([\d.]+)/.exec(stdout);
    if (m?.[1] === undefined) throw new Error(`pgbench output without tps:\n${stdout}`);
    return Number(m[1]);
  } finally {
    await dbs.drop();
  }
}

async function runOnce(storage: Storage, o: HttpBenchOptions, run: number): Promise<Run> {
  const loadavg = os.loadavg().map((x) => Math.round(x * 100) / 100);
  const pod = await startPod({ workers: o.workers, shards: SHARDS,
    pgDatabases: storage === 'postgresql' ? PG_SHARD_DATABASES : 0,
    ...(process.env.BENCH_POD_CPU_PROF ? { cpuProfDir: process.env.BENCH_POD_CPU_PROF } : {}) });
  let phases: Record<string, PhaseRun>;
  try {
    const tokens = await setupTenants(pod, o.workers);
    process.stdout.write(`${storage} run ${run + 1}/${o.runs} (load average ` +
      `${loadavg.join(' ')}; pod pid ${pod.pid})\n`);
    phases = await runPhases(pod, tokens, o, `r${run}${storage[0]}`);
  } finally {
    await pod.stop();
  }
  // the baseline runs with the pod stopped, so each side has the whole machine
  const pgbenchTps = await runPgbench(o.seconds);
  process.stdout.write(`  pgbench TPC-B: ${fmtInt(pgbenchTps)} tps\n`);
  return { storage, loadavg, phases, pgbenchTps };
}

function sum(values: number[]): number {
  return values.reduce((a, b) => a + b, 0);
}

function ms(values: number[]): string {
  return median(values).toFixed(2);
}

function tableRows(runs: Run[], storage: Storage): Array<Record<string, string | number>> {
  const tps = median(runs.map((r) => r.pgbenchTps));
  const rows: Array<Record<string, string | number>> = PHASES.map((p) => {
    const loads = runs.map((r) => r.phases[p.key]?.load).filter((l) => l !== undefined);
    const pods = runs.map((r) => r.phases[p.key]?.pod).filter((x) => x !== undefined);
    const lat = loads.map((l) => l.latencyMs);
    const pay = median(loads.map((l) => l.paymentsPerSec));
    const errors = loads.reduce((n, l) => n + sum(Object.values(l.errors)), 0);
    return {
      scenario: p.name, conns: p.mode === 'ws' ? `${p.connections}x${p.inflight}` : p.connections,
      'req/s': fmtInt(median(loads.map((l) => l.requestsPerSec))), 'payments/s': fmtInt(pay),
      'p50 ms': ms(lat.map((x) => x.p50)), 'p95 ms': ms(lat.map((x) => x.p95)),
      'p99 ms': ms(lat.map((x) => x.p99)), 'p99.9 ms': ms(lat.map((x) => x.p999)),
      'max ms': ms(lat.map((x) => x.max)), errors,
      'pod cpu': median(pods.map((x) => x.cpuCores)).toFixed(2),
      'pod main': median(pods.map((x) => x.mainThreadCores)).toFixed(2),
      'pg cpu': median(pods.map((x) => x.postgresCores)).toFixed(2),
      'other cpu': median(pods.map((x) => x.otherCores)).toFixed(2),
      'load cpu': median(loads.map((l) => l.clientCpuCores)).toFixed(2),
      'rows/commit': median(pods.map((x) => x.rowsPerCommit)).toFixed(1),
      'commit ms': median(pods.map((x) => x.commitMsMean)).toFixed(2),
      // the bucket bound; the client's p99 above it is time outside the pod's handlers
      'in pod p99 <= ms': median(pods.map((x) => x.serverP99Within)),
      // efficiency, not a measured rate: what one core of pod CPU bought in this phase
      'pay/pod-core-s': fmtInt(median(runs.flatMap((r) => {
        const x = r.phases[p.key];
        return x === undefined ? [] : [x.load.paymentsPerSec / x.pod.cpuCores];
      }))),
      'x pgbench': (pay / tps).toFixed(1),
      target: storage === 'postgresql' ? (PG_TARGETS[p.key] ?? p.target) : p.target,
    };
  });
  rows.push({ scenario: `pgbench TPC-B -s ${PGBENCH.scale} -c ${PGBENCH.clients} ` +
    `-j ${PGBENCH.threads} (baseline)`, conns: PGBENCH.clients, 'req/s': fmtInt(tps),
  'payments/s': fmtInt(tps), 'p50 ms': '-', 'p95 ms': '-', 'p99 ms': '-', 'p99.9 ms': '-',
  'max ms': '-', errors: 0, 'pod cpu': '-', 'pod main': '-', 'pg cpu': '-', 'other cpu': '-',
  'load cpu': '-', 'rows/commit': '-', 'commit ms': '-', 'in pod p99 <= ms': '-',
  'pay/pod-core-s': '-',
  'x pgbench': '1.0', target: '-' });
  return rows;
}

function pgChoice(o: HttpBenchOptions): 'no' | 'also' | 'only' {
  if (o.pg !== undefined) return o.pg;
  const env = process.env.BENCH_PG ?? '';
  if (env === 'only') return 'only';
  return env === '1' || env === 'true' || env === 'also' ? 'also' : 'no';
}

export async function benchHttp(o: HttpBenchOptions): Promise<void> {
  const pg = pgChoice(o);
  const storages: Storage[] = pg === 'only' ? ['postgresql']
    : pg === 'also' ? ['embedded', 'postgresql'] : ['embedded'];
  const m = machine();
  process.stdout.write(`http bench: ${m.cpu}, ${m.cores} cores, node ${m.node}; the pod ` +
    `(main thread + ${o.workers} workers), the load generator and PostgreSQL share these ` +
    `${m.cores} cores. ${o.runs} runs x ${o.seconds} s (+1 s warm-up) per phase, medians.\n`);
  const byStorage = new Map<Storage, Run[]>();
  for (const storage of storages) {
    const runs: Run[] = [];
    for (let r = 0; r < o.runs; r++) runs.push(await runOnce(storage, o, r));
    byStorage.set(storage, runs);
  }
  const tables: Record<string, Array<Record<string, string | number>>> = {};
  for (const [storage, runs] of byStorage) {
    tables[storage] = tableRows(runs, storage);
    printTable(`${storage} journal: ${o.runs} runs x ${o.seconds} s, ${o.workers} workers, ` +
      `${SHARDS} shards, ${Math.max(TENANTS, o.workers)} tenants x ${ACCOUNTS} accounts; ` +
      `latency from intended send time; medians`, tables[storage] ?? []);
  }
  writeResult('http', { options: o, phases: PHASES, pgbench: PGBENCH, tables,
    runs: Object.fromEntries(byStorage) });
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: {
    runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' },
    workers: { type: 'string', default: String(os.availableParallelism()) },
    pg: { type: 'boolean', default: false }, 'pg-only': { type: 'boolean', default: false },
  } });
  await benchHttp({ runs: Number(values.runs), seconds: Number(values.seconds),
    workers: Number(values.workers),
    pg: values['pg-only'] ? 'only' : values.pg ? 'also' : undefined });
}

// `node dist/bench/http.js [--pg]` as well as `node dist/bench/run.js http`
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench http: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
