// Ledger core benchmark: durable transfers/s through the actor host (worker threads, embedded
// fsynced journal) at batch sizes 1, 100 and 8190, against the bare state machine measured
// in the same run. Run from the build: `npm run bench -- core`. Asserts nothing.
// BENCH_CORE_BATCHES=8190 runs only those batch sizes (each on a fresh host per run);
// BENCH_WORKER_YOUNG_MB sets the workers' young generation (0: V8's default).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startActorHost, type ActorHost } from '../shards/actor-host.js';
import { applyBatch, createShardState } from '../shards/state-machine.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { Command, Envelope, Outcome, TransferCmd } from '../protocol/types.js';
import { fmtInt, median, printTable, writeResult } from './report.js';

const TENANTS = 64;
const ACCOUNTS = 100;

export interface CoreOptions {
  runs: number;
  seconds: number;
  workers: number;
}

function transfer(id: string, from: number, to: number): TransferCmd {
  return {
    op: 'transfer', id, fromAccountId: `a${from}`, toAccountId: `a${to}`, amountMinor: 1n,
    currencyCode: 'USD', description: null, paymentTypeId: null, pending: false,
    timeoutSeconds: null,
  };
}

/** The baseline: one shard's state machine, in this thread, no journal, batches of 8190. */
function bareStateMachine(seconds: number): number {
  const state = createShardState(0, 1);
  const setup: Envelope[] = [];
  for (let a = 0; a < ACCOUNTS; a++) {
    setup.push({ tenant: 't', cmd: { op: 'createAccount', id: `a${a}`, currencyCode: 'USD',
      allowNegative: true, metadata: '{}' } });
  }
  applyBatch(state, setup, 0, [], []);
  const batch: Envelope[] = [];
  const results: Outcome[] = [];
  const entries: JournalEntry[] = [];
  let n = 0;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  while (performance.now() < deadline) {
    batch.length = 0;
    for (let i = 0; i < 8190; i++, n++) {
      batch.push({ tenant: 't', cmd: transfer(`b${n}`, n % ACCOUNTS, (n + 1) % ACCOUNTS) });
    }
    results.length = 0;
    entries.length = 0;
    applyBatch(state, batch, 1, results, entries);
  }
  return n / ((performance.now() - started) / 1000);
}

function send(host: ActorHost, tenant: string, cmd: Command): Promise<Outcome> {
  return new Promise((resolve) => host.submit(tenant, cmd, resolve));
}

async function setupTenants(host: ActorHost): Promise<void> {
  const all: Promise<Outcome>[] = [];
  for (let t = 0; t < TENANTS; t++) {
    for (let a = 0; a < ACCOUNTS; a++) {
      all.push(send(host, `t${t}`, { op: 'createAccount', id: `a${a}`, currencyCode: 'USD',
        allowNegative: true, metadata: '{}' }));
    }
  }
  const outcomes = await Promise.all(all);
  if (outcomes.some((o) => !o.ok)) throw new Error('bench setup failed');
}

/** Closed loop: `callers` each send a command, wait for its durable reply, send the next. */
async function closedLoop(
  host: ActorHost, batch: number, callers: number, seconds: number, tag: string,
): Promise<number> {
  let transfers = 0;
  let failures = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  const caller = async (c: number): Promise<void> => {
    const tenant = `t${c % TENANTS}`;
    for (let n = 0; performance.now() < deadline; n++) {
      const id = `${tag}-${c}-${n}`;
      const cmd: Command = batch === 1
        ? transfer(id, n % ACCOUNTS, (n + 7) % ACCOUNTS)
        : { op: 'transferBatch', atomic: false, transactions: Array.from({ length: batch },
          (_, i) => transfer(`${id}-${i}`, (n + i) % ACCOUNTS, (n + i + 7) % ACCOUNTS)) };
      const o = await send(host, tenant, cmd);
      if (o.ok) transfers += batch;
      else failures++;
    }
  };
  await Promise.all(Array.from({ length: callers }, (_, c) => caller(c)));
  if (failures > 0) process.stdout.write(`  (${failures} failed commands in ${tag})\n`);
  return transfers / ((performance.now() - started) / 1000);
}

const ALL_SCENARIOS = [
  { name: 'single transfers', batch: 1, callers: 4096 },
  { name: 'batch 100', batch: 100, callers: 64 },
  { name: 'batch 8190', batch: 8190, callers: 8 },
];
const SCENARIOS = ((only) => only === undefined ? ALL_SCENARIOS
  : ALL_SCENARIOS.filter((s) => only.split(',').includes(String(s.batch))))(
  process.env.BENCH_CORE_BATCHES);
const YOUNG_MB = process.env.BENCH_WORKER_YOUNG_MB;

async function hostRun(opts: CoreOptions, run: number): Promise<number[]> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-'));
  const host = await startActorHost({
    workerUrl: new URL('../src/shard-worker.js', import.meta.url),
    storage: { kind: 'file', dataDir: dir },
    shardCount: 64,
    workers: opts.workers,
    snapshotEvery: 0,
    ...(YOUNG_MB === undefined ? {} : { workerYoungGenerationMb: Number(YOUNG_MB) }),
  });
  try {
    await setupTenants(host);
    const rates: number[] = [];
    for (const s of SCENARIOS) {
      rates.push(await closedLoop(host, s.batch, s.callers, opts.seconds, `r${run}-${s.batch}`));
    }
    return rates;
  } finally {
    await host.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchCore(opts: CoreOptions): Promise<void> {
  const bare: number[] = [];
  const host: number[][] = SCENARIOS.map(() => []);
  for (let run = 0; run < opts.runs; run++) {
    bare.push(bareStateMachine(opts.seconds));
    const rates = await hostRun(opts, run);
    rates.forEach((r, i) => host[i]?.push(r));
    process.stdout.write(`run ${run + 1}/${opts.runs}: bare ${fmtInt(bare[run] ?? 0)}/s, ` +
      `host ${rates.map(fmtInt).join(' / ')}\n`);
  }
  const bareMedian = median(bare);
  const rows = SCENARIOS.map((s, i) => ({
    scenario: s.name,
    callers: s.callers,
    'durable transfers/s (median)': fmtInt(median(host[i] ?? [])),
    'ratio to bare state machine': (median(host[i] ?? []) / bareMedian).toFixed(3),
  }));
  rows.unshift({ scenario: 'bare state machine (baseline)', callers: 1,
    'durable transfers/s (median)': fmtInt(bareMedian), 'ratio to bare state machine': '1.000' });
  printTable(`ledger core: ${opts.runs} runs x ${opts.seconds}s, ${opts.workers} workers, ` +
    `64 shards, embedded fsynced journal` +
    (YOUNG_MB === undefined ? '' : `, worker young generation ${YOUNG_MB} MiB`), rows);
  writeResult('core', { options: opts, youngMb: YOUNG_MB ?? null, bare,
    host: SCENARIOS.map((s, i) => ({ ...s, rates: host[i] })), rows });
}
