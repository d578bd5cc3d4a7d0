// Recovery and snapshot-pause benchmark: time until a shard serves again after a restart, from
// a full journal replay vs a Redis snapshot + journal tail, and the actor pause encodeSnapshot
// causes at 10k / 100k / 1M accounts. Embedded journal files; asserts nothing.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { FileJournal } from '../persistence/journal-file.js';
import { RedisSnapshotStore } from '../persistence/snapshot-redis.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { SnapshotStore } from '../protocol/storage.js';
import type { Envelope } from '../protocol/types.js';
import { recoverActor } from '../shards/actor-worker.js';
import { encodeSnapshot, stateDigest } from '../shards/snapshot-codec.js';
import { applyBatch, createShardState, type ShardState } from '../shards/state-machine.js';
import { fmtInt, median, percentile, printTable, writeResult } from './report.js';

export interface RecoveryBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
}

const TENANTS = 100;
const BATCH = 8190;
/** entries per journal group while generating: big groups, few fsyncs */
const GROUP = 8 * BATCH;
const REDIS_URL = process.env.LEDGER_REDIS_URL ?? 'redis://127.0.0.1:6379';
const NONE: SnapshotStore = {
  save: async () => undefined, loadNewest: async () => null, close: async () => undefined,
};

function openCmd(i: number): Envelope {
  return { tenant: `t${i % TENANTS}`, cmd: { op: 'createAccount', id: `a${Math.floor(i / TENANTS)}`,
    currencyCode: 'USD', allowNegative: true, metadata: '{}' } };
}

function transferCmd(i: number, accounts: number): Envelope {
  const perTenant = Math.max(2, Math.floor(accounts / TENANTS));
  const k = Math.floor(i / TENANTS);
  return { tenant: `t${i % TENANTS}`, cmd: { op: 'transfer', id: `x${k}`,
    fromAccountId: `a${k % perTenant}`, toAccountId: `a${(k * 7 + 1) % perTenant}`,
    amountMinor: BigInt(1 + (k % 97)), currencyCode: 'USD', description: null,
    paymentTypeId: null, pending: false, timeoutSeconds: null } };
}

/**
 * Drives one shard to `entries` journal entries: `accounts` account-opens, then transfers.
 * `sink` receives each batch's entries (a journal commit, or nothing for in-memory states).
 */
async function grow(state: ShardState, accounts: number, entries: number,
  sink: (e: JournalEntry[]) => Promise<void>): Promise<void> {
  let opened = state.sequence;
  let sent = Math.max(0, state.sequence - accounts);
  let time = 1_700_000_000_000 + state.sequence;
  const batch: Envelope[] = [];
  let pending: JournalEntry[] = [];
  while (state.sequence < entries) {
    batch.length = 0;
    const room = Math.min(BATCH, entries - state.sequence);
    for (let i = 0; i < room; i++) {
      batch.push(opened < accounts ? openCmd(opened++) : transferCmd(sent++, accounts));
    }
    applyBatch(state, batch, time++, [], pending);
    if (pending.length >= GROUP) {
      await sink(pending);
      pending = [];
    }
  }
  if (pending.length > 0) await sink(pending);
}

function inMemory(accounts: number, entries: number): Promise<ShardState> {
  const state = createShardState(0, 1);
  return grow(state, accounts, entries, async () => undefined).then(() => state);
}

/** encodeSnapshot runs on the actor thread: its duration is the pause a snapshot causes. */
async function pauses(o: RecoveryBenchOptions, sizes: number[]) {
  const rows: Array<Record<string, string | number>> = [];
  for (const accounts of sizes) {
    const state = await inMemory(accounts, 2 * accounts); // N accounts and N transfers
    const samples = Math.max(o.runs, accounts >= 1_000_000 ? o.runs : 20);
    const ms: number[] = [];
    let bytes = 0;
    for (let i = 0; i < samples; i++) {
      const started = performance.now();
      bytes = encodeSnapshot(state).length;
      ms.push(performance.now() - started);
    }
    ms.sort((a, b) => a - b);
    rows.push({ accounts: fmtInt(accounts), transfers: fmtInt(accounts), samples,
      'snapshot MiB': (bytes / 2 ** 20).toFixed(1), 'pause p50 ms': percentile(ms, 50).toFixed(1),
      'pause p99 ms': percentile(ms, 99).toFixed(1), 'target ms': 5 });
  }
  return rows;
}

interface RecoveryRun {
  fullSeconds: number;
  snapshotSeconds: number;
  loadSeconds: number;
  tail: number;
  snapshotMiB: number;
}

/** Builds the journal (and a snapshot `tail` entries before its end), then recovers twice. */
async function recoveryOnce(accounts: number, entries: number, dir: string): Promise<RecoveryRun> {
  const dataDir = path.join(dir, `data-${accounts}-${entries}`);
  const prefix = `ledger-bench:${process.pid}:${Date.now()}:`;
  const store = new RedisSnapshotStore(REDIS_URL, { keyPrefix: prefix, commandTimeoutMs: 30_000 });
  const tail = Math.min(100_000, Math.floor(entries / 10));
  const journal = new FileJournal(dataDir);
  await journal.open([0], 1);
  const state = createShardState(0, 1);
  const commit = (e: JournalEntry[]) => journal.commit(e);
  await grow(state, accounts, entries - tail, commit);
  const bytes = encodeSnapshot(state);
  await store.save({ shard: 0, epoch: 1, head: journal.head(0), state: bytes });
  await grow(state, accounts, entries, commit);
  const live = stateDigest(state);
  await journal.close();
  try {
    const full = await timedRecovery(dataDir, NONE);
    const snap = await timedRecovery(dataDir, store);
    if (full.digest !== live || snap.digest !== live) throw new Error('recovered state differs');
    return { fullSeconds: full.seconds, snapshotSeconds: snap.seconds, loadSeconds: snap.load,
      tail, snapshotMiB: bytes.length / 2 ** 20 };
  } finally {
    await store.close();
    await dropPrefix(prefix);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Journal open + recoverActor: what a restarted worker does before it serves the shard. */
async function timedRecovery(dataDir: string, snapshots: SnapshotStore) {
  const started = performance.now();
  let load = 0;
  const timed: SnapshotStore = { ...snapshots, loadNewest: async (shard) => {
    const t = performance.now();
    const got = await snapshots.loadNewest(shard);
    load = (performance.now() - t) / 1000;
    return got;
  } };
  const journal = new FileJournal(dataDir);
  await journal.open([0], 1);
  const actor = await recoverActor({ journal, snapshots: timed }, 0);
  const seconds = (performance.now() - started) / 1000;
  await journal.close();
  return { seconds, load, digest: stateDigest(actor.state) };
}

async function dropPrefix(prefix: string): Promise<void> {
  const { Redis } = await import('ioredis');
  const client = new Redis(REDIS_URL);
  let cursor = '0';
  do {
    const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await client.unlink(...keys);
  } while (cursor !== '0');
  await client.quit();
}

function sizesFromEnv(name: string, fallback: number[]): number[] {
  const raw = process.env[name];
  return raw === undefined ? fallback : raw.split(',').map(Number).filter((n) => n > 0);
}

export async function benchRecovery(o: RecoveryBenchOptions): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-recovery-'));
  try {
    const pauseRows = await pauses(o, sizesFromEnv('PAUSE_ACCOUNTS', [10_000, 100_000,
      1_000_000]));
    printTable('snapshot pause: encodeSnapshot on the actor thread (N accounts + N transfers)',
      pauseRows);
    const accounts = Number(process.env.RECOVERY_ACCOUNTS ?? 1_000_000);
    const recoveryRows: Array<Record<string, string | number>> = [];
    for (const entries of sizesFromEnv('RECOVERY_ENTRIES', [2_000_000])) {
      const runs: RecoveryRun[] = [];
      for (let r = 0; r < o.runs; r++) runs.push(await recoveryOnce(accounts, entries, dir));
      const full = median(runs.map((r) => r.fullSeconds));
      const snap = median(runs.map((r) => r.snapshotSeconds));
      recoveryRows.push({ accounts: fmtInt(accounts), entries: fmtInt(entries),
        'full replay s': full.toFixed(2), 'snapshot+tail s': snap.toFixed(2),
        'of which load s': median(runs.map((r) => r.loadSeconds)).toFixed(2),
        tail: fmtInt(runs[0]?.tail ?? 0), 'snapshot MiB': (runs[0]?.snapshotMiB ?? 0).toFixed(0),
        'ratio full/snap': (full / snap).toFixed(2), 'target s': 5 });
    }
    printTable(`recovery of one shard until it serves, median of ${o.runs} runs ` +
      '(baseline: full journal replay)', recoveryRows);
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
