// Audit replay speed of `ledger audit` over a generated journal of >= 1M entries (embedded files;
// PostgreSQL when reachable): entries/s of wall time and per CPU-second, against its two floors:
// bare applyEntry and SHA-256 of each record, each alone.

import { mkdtempSync, rmSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { FileJournal } from '../persistence/journal-file.js';
import { readFileShard } from '../persistence/journal-reader.js';
import { PgJournal } from '../persistence/pg-journal.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { JournalSink } from '../protocol/storage.js';
import type { Envelope, TransferCmd } from '../protocol/types.js';
import { EntryEncoder, hashKey, sha256Binary } from '../protocol/journal-codec.js';
import { HASH_BYTES, ZERO_HASH } from '../protocol/journal-entry.js';
import { applyBatch, applyEntry, createShardState } from '../shards/state-machine.js';
import { auditShard } from '../src/audit/audit-worker.js';
import { runAudit } from '../src/audit/run-audit.js';
import { fmtInt, median, printTable, writeResult } from './report.js';

export interface AuditBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
}

const SHARDS = 4;
const ENTRIES_PER_SHARD = 262_144;
const ACCOUNTS = 1000;
const BATCH = 8190;
const PG_ADMIN = 'postgres://postgres@127.0.0.1:5432/postgres';

function transfer(n: number): TransferCmd {
  return {
    op: 'transfer', id: `t${n}`, fromAccountId: `a${n % ACCOUNTS}`,
    toAccountId: `a${(n * 7 + 1) % ACCOUNTS}`, amountMinor: BigInt(1 + (n % 97)),
    currencyCode: 'USD', description: null, paymentTypeId: null, pending: n % 10 === 0,
    timeoutSeconds: null,
  };
}

/** One shard's business: accounts, then transfers (every tenth a hold, posted next batch). */
async function generateShard(journal: JournalSink, shard: number): Promise<number> {
  const state = createShardState(shard, journal.epochOf(shard));
  const entries: JournalEntry[] = [];
  const opens: Envelope[] = [];
  for (let a = 0; a < ACCOUNTS; a++) {
    opens.push({ tenant: `t${shard}`, cmd: { op: 'createAccount', id: `a${a}`,
      currencyCode: 'USD', allowNegative: a % 2 === 0, metadata: '{}' } });
  }
  applyBatch(state, opens, 1, [], entries);
  await journal.commit(entries);
  let n = 0;
  let holds: number[] = [];
  for (let time = 2; state.sequence < ENTRIES_PER_SHARD; time++) {
    entries.length = 0;
    const batch: Envelope[] = holds.map((h) => ({ tenant: `t${shard}`,
      cmd: { op: 'post', id: `t${h}`, amountMinor: null } }));
    holds = [];
    while (batch.length < BATCH) {
      batch.push({ tenant: `t${shard}`, cmd: transfer(n) });
      if (n % 10 === 0) holds.push(n);
      n++;
    }
    applyBatch(state, batch, time, [], entries);
    await journal.commit(entries);
  }
  return state.sequence;
}

async function generate(journal: JournalSink): Promise<number> {
  const shards = Array.from({ length: SHARDS }, (_, i) => i);
  await journal.open(shards, 0);
  let total = 0;
  for (const shard of shards) total += await generateShard(journal, shard);
  await journal.close();
  return total;
}

/** Wall seconds and CPU seconds of this process (all its threads) taken by `fn`. */
async function timed(fn: () => Promise<void>): Promise<{ wall: number; cpu: number }> {
  const cpu0 = process.cpuUsage();
  const started = performance.now();
  await fn();
  const used = process.cpuUsage(cpu0);
  return { wall: (performance.now() - started) / 1000, cpu: (used.user + used.system) / 1e6 };
}

/** Baseline: applyEntry alone over entries already decoded in memory (no I/O, no hashing). */
async function bareEntries(dataDir: string): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  for await (const batch of readFileShard(dataDir, 0)) {
    for (const r of batch.records) entries.push(r.entry);
  }
  return entries;
}

/**
 * Shard 0's entries replayed into SHARDS fresh states: as many entries as the audits replay, so
 * a run lasts long enough that garbage collection is counted fairly on both sides.
 */
function bareReplay(entries: readonly JournalEntry[]): Promise<void> {
  for (let pass = 0; pass < SHARDS; pass++) {
    const state = createShardState(0, 0);
    for (const e of entries) applyEntry(state, e);
  }
  return Promise.resolve();
}

/** Shard 0's entries as journal records in one buffer: [start, end of body) of each. */
function recordSpans(entries: readonly JournalEntry[]): { bytes: Buffer; spans: Uint32Array } {
  const enc = new EntryEncoder(entries.length * 256);
  const spans = new Uint32Array(entries.length * 2);
  let key = hashKey(ZERO_HASH);
  entries.forEach((e, i) => {
    spans[2 * i] = enc.length;
    key = enc.appendOne(e, key);
    spans[2 * i + 1] = enc.length - HASH_BYTES;
  });
  return { bytes: Buffer.from(enc.bytes()), spans };
}

/**
 * The other floor of any audit: SHA-256 of every record (prevHash ‖ body), one node:crypto call
 * per record as the auditor's reader makes it, SHARDS passes like bareReplay; nothing else.
 */
function hashOnly(r: { bytes: Buffer; spans: Uint32Array }): Promise<void> {
  const { bytes, spans } = r;
  let sink = 0;
  for (let pass = 0; pass < SHARDS; pass++) {
    for (let i = 0; i < spans.length; i += 2) {
      const at = spans[i] as number;
      sink += sha256Binary(new Uint8Array(bytes.buffer, bytes.byteOffset + at,
        (spans[i + 1] as number) - at)).length;
    }
  }
  if (sink === 0) throw new Error('no records hashed');
  return Promise.resolve();
}

type Source = { kind: 'file'; dataDir: string } | { kind: 'pg'; urls: string[] };

/** One core: every shard audited in this thread, one after another. */
async function oneCore(source: Source): Promise<void> {
  for (let shard = 0; shard < SHARDS; shard++) {
    const report = await auditShard({ source, shard, asOfSequence: null, asOfTime: null,
      tenants: null, balancesAtEnd: false, statement: null, snapshotDir: null, progress: null,
      slot: 0 });
    if (report.findings.length > 0) throw new Error(`bench journal has findings: shard ${shard}`);
  }
}

const quiet = { write: (): boolean => true };

/** The whole CLI path with `--workers` threads (piscina). */
async function cli(args: string[]): Promise<void> {
  const code = await runAudit([...args, '--quiet'], { stdout: quiet, stderr: quiet });
  if (code !== 0) throw new Error(`audit exited ${code}`);
}

interface Scenario {
  name: string;
  /** threads auditing at once (1 for the in-thread rows) */
  threads: number;
  entries: number;
  run: () => Promise<void>;
}

interface Row {
  name: string;
  threads: number;
  /** entries per second of wall time, median over runs */
  wallRate: number;
  /** entries per CPU-second of this process (every thread; not PostgreSQL's), median */
  cpuRate: number;
}

/**
 * Runs every scenario once per round, rounds `runs` times: the baseline and the audits share
 * each round's machine conditions (the machine is shared), then medians per scenario.
 */
async function measure(scenarios: readonly Scenario[], runs: number): Promise<Row[]> {
  const samples = scenarios.map(() => ({ wall: [] as number[], cpu: [] as number[] }));
  for (let r = 0; r < runs; r++) {
    for (const [i, s] of scenarios.entries()) {
      const t = await timed(s.run);
      samples[i]?.wall.push(s.entries / t.wall);
      samples[i]?.cpu.push(s.entries / t.cpu);
    }
  }
  return scenarios.map((s, i) => ({ name: s.name, threads: s.threads,
    wallRate: median(samples[i]?.wall ?? []), cpuRate: median(samples[i]?.cpu ?? []) }));
}

async function pgReachable(): Promise<boolean> {
  const client = new pg.Client({ connectionString: PG_ADMIN, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.end();
    return true;
  } catch {
    return false; // no server: the PostgreSQL rows are left out of the table, and said so
  }
}

async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: PG_ADMIN });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

async function fileScenarios(o: AuditBenchOptions, dir: string): Promise<Scenario[]> {
  const dataDir = path.join(dir, 'data');
  const total = await generate(new FileJournal(dataDir));
  const bare = await bareEntries(dataDir);
  const records = recordSpans(bare);
  const source = { kind: 'file' as const, dataDir };
  return [
    { name: 'baseline: bare applyEntry (in memory)', threads: 1, entries: SHARDS * bare.length,
      run: () => bareReplay(bare) },
    { name: 'baseline: SHA-256 per record alone', threads: 1, entries: SHARDS * bare.length,
      run: () => hashOnly(records) },
    { name: 'audit, files, 1 core', threads: 1, entries: total, run: () => oneCore(source) },
    { name: `audit CLI, files, ${o.workers} threads`, threads: o.workers, entries: total,
      run: () => cli(['--data-dir', dataDir, '--workers', String(o.workers)]) },
  ];
}

async function pgScenarios(o: AuditBenchOptions, db: string, total: number): Promise<Scenario[]> {
  const url = `postgres://postgres@127.0.0.1:5432/${db}`;
  const written = await generate(new PgJournal([url], { podId: 'bench' }));
  if (written !== total) throw new Error(`PostgreSQL journal has ${written} entries`);
  const source = { kind: 'pg' as const, urls: [url] };
  return [
    { name: 'audit, PostgreSQL COPY, 1 core', threads: 1, entries: total,
      run: () => oneCore(source) },
    { name: `audit CLI, PostgreSQL, ${o.workers} threads`, threads: o.workers, entries: total,
      run: () => cli(['--pg', url, '--workers', String(o.workers)]) },
  ];
}

function table(rows: readonly Row[]): Array<Record<string, string | number>> {
  const baseline = rows[0]?.cpuRate ?? Number.NaN;
  const cores = Math.min(SHARDS, os.availableParallelism());
  return rows.map((r) => ({
    scenario: r.name,
    'entries/s (wall)': fmtInt(r.wallRate),
    'wall per thread': fmtInt(r.wallRate / Math.min(r.threads, cores)),
    'entries per CPU-s': fmtInt(r.cpuRate),
    'vs baseline (CPU-s)': (r.cpuRate / baseline).toFixed(2),
  }));
}

export async function benchAudit(o: AuditBenchOptions): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-audit-'));
  const db = `ledger_bench_audit_${process.pid}`;
  const withPg = await pgReachable();
  try {
    const scenarios = await fileScenarios(o, dir);
    const total = scenarios.find((s) => s.name.startsWith('audit'))?.entries ?? 0;
    if (withPg) {
      await admin(`CREATE DATABASE ${db}`);
      scenarios.push(...(await pgScenarios(o, db, total)));
    }
    const rows = await measure(scenarios, o.runs);
    printTable(`audit replay, ${fmtInt(total)} entries in ${SHARDS} shards, median of ` +
      `${o.runs} runs, ${os.availableParallelism()} cores shared with PostgreSQL` +
      (withPg ? '' : ' (PostgreSQL not reachable: its rows are left out)'), table(rows));
    const [apply, hashing] = [rows[0]?.cpuRate ?? Number.NaN, rows[1]?.cpuRate ?? Number.NaN];
    process.stdout.write('ceiling: every audit hashes and applies each entry; those two ' +
      `alone, one after the other: ${fmtInt(1 / (1 / apply + 1 / hashing))} entries per ` +
      'CPU-second (reading, decoding and checks come on top)\n');
    process.stdout.write('target: 1,000,000 entries per CPU-second of the auditor process ' +
      '(process.cpuUsage: every thread of it, not PostgreSQL\'s backend), from PostgreSQL\n' +
      'entries/s (wall) includes waiting for PostgreSQL, which runs on the same cores\n');
    writeResult('audit', { settings: { ...o, shards: SHARDS, entries: total }, rows });
  } finally {
    rmSync(dir, { recursive: true, force: true });
    if (withPg) await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.env.RUNS ?? 3);
  benchAudit({ runs, seconds: 0, workers: Number(process.env.WORKERS ?? 2) }).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
