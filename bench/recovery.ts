// Recovery and snapshot-pause benchmark: time until a shard serves again after a restart, from
// a full journal replay (the baseline) vs a Redis snapshot + journal tail, split into journal
// open and snapshot load (side by side, as a restarting worker runs them), decode and tail
// replay; and the pause snapshots cause (snapshot-pause.ts).
// Embedded journal files; asserts nothing. RECOVERY_ENTRIES, RECOVERY_ACCOUNTS, PAUSE_ACCOUNTS.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { inFreshThread } from './fresh-thread.js';
import { fmtInt, median, printTable, writeResult } from './report.js';
import type { GenerateTask, RecoveryTask, RecoveryTiming } from './recovery-worker.js';
import { benchSnapshotPause, dropPrefix } from './snapshot-pause.js';

export interface RecoveryBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
}

const REDIS_URL = process.env.LEDGER_REDIS_URL ?? 'redis://127.0.0.1:6379';

interface RecoveryRun {
  full: RecoveryTiming;
  snap: RecoveryTiming;
  tail: number;
  snapshotMiB: number;
  generateSeconds: number;
}

/** Builds the journal and snapshot, then recovers from each in a fresh worker thread. */
async function recoveryOnce(accounts: number, entries: number, dir: string): Promise<RecoveryRun> {
  const dataDir = path.join(dir, `data-${accounts}-${entries}`);
  const keyPrefix = `ledger-bench:${process.pid}:${Date.now()}:`;
  const tail = Math.min(100_000, Math.floor(entries / 10));
  const started = performance.now();
  try {
    const redis = { url: REDIS_URL, keyPrefix };
    const bytes = await inWorker<number>({ kind: 'generate', dataDir, redis, accounts, entries,
      tail });
    const generateSeconds = (performance.now() - started) / 1000;
    const snap = await inWorker<RecoveryTiming>({ kind: 'recover', dataDir, redis });
    const full = await inWorker<RecoveryTiming>({ kind: 'recover', dataDir, redis: null });
    if (full.digest !== snap.digest) throw new Error('recovered states differ');
    return { full, snap, tail, snapshotMiB: bytes / 2 ** 20, generateSeconds };
  } finally {
    await dropPrefix(REDIS_URL, keyPrefix);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A restarted shard worker has a fresh heap: so does each recovery measured here. */
function inWorker<T>(task: RecoveryTask | GenerateTask): Promise<T> {
  return inFreshThread<T>(new URL('./recovery-worker.js', import.meta.url), task,
    'recovery worker');
}

function sizesFromEnv(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  return raw === undefined ? fallback : raw.split(',').map(Number).filter((n) => n > 0);
}

function recoveryRow(accounts: number, entries: number, runs: RecoveryRun[]) {
  const m = (f: (r: RecoveryRun) => number): string => median(runs.map(f)).toFixed(2);
  return { accounts: fmtInt(accounts), entries: fmtInt(entries), 'full replay s': m((r) =>
    r.full.seconds), 'snapshot+tail s': m((r) => r.snap.seconds), 'open s': m((r) => r.snap.open),
  'load s': m((r) => r.snap.load), 'decode s': m((r) => r.snap.decode),
  'tail s': m((r) => r.snap.replay), 'full: open s': m((r) => r.full.open),
  tail: fmtInt(runs[0]?.tail ?? 0), 'snapshot MiB': m((r) => r.snapshotMiB),
  'ratio full/snap': m((r) => r.full.seconds / r.snap.seconds), 'target s': 5,
  'generate s': m((r) => r.generateSeconds) };
}

export async function benchRecovery(o: RecoveryBenchOptions): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-recovery-'));
  try {
    const sizes = sizesFromEnv('PAUSE_ACCOUNTS', [10_000, 100_000, 1_000_000]);
    const pauseRows = await benchSnapshotPause(sizes, REDIS_URL);
    printTable('snapshot pause: slices of encoding on the actor thread while a payment loop ' +
      `runs (N accounts + N transfers; Redis store; base: the loop alone)`, pauseRows);
    const accounts = Number(process.env.RECOVERY_ACCOUNTS ?? 1_000_000);
    const recoveryRows: Array<Record<string, string | number>> = [];
    for (const entries of sizesFromEnv('RECOVERY_ENTRIES', [2_000_000])) {
      const runs: RecoveryRun[] = [];
      for (let r = 0; r < o.runs; r++) runs.push(await recoveryOnce(accounts, entries, dir));
      recoveryRows.push(recoveryRow(accounts, entries, runs));
    }
    printTable(`recovery of one shard until it serves, median of ${o.runs} runs ` +
      '(baseline: full journal replay; the snapshot loads while the journal opens)', recoveryRows);
    writeResult('recovery', { settings: { ...o, redis: REDIS_URL }, pauseRows, recoveryRows });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  benchRecovery({ runs: Number(process.env.RUNS ?? 3), seconds: 0, workers: 1 }).catch((err) => {
    process.stderr.write(`bench recovery: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
