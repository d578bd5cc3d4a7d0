// Audit replay speed: entries/s per core of `ledger audit` over a generated journal of >= 1M
// entries (embedded files; PostgreSQL when reachable), against a bare applyEntry baseline.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { FileJournal } from '../persistence/journal-file.js';
import { readFileShard } from '../persistence/journal-reader.js';
import { PgJournal } from '../persistence/pg-journal.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { JournalSink } from '../protocol/storage.js';
import type { Envelope, TransferCmd } from '../protocol/types.js';
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

/** Baseline: applyEntry alone over entries already decoded in memory (no I/O, no hashing). */
async function bareReplay(dataDir: string): Promise<number> {
  const entries: JournalEntry[] = [];
  for await (const batch of readFileShard(dataDir, 0)) {
    for (const r of batch.records) entries.push(r.entry);
  }
  const state = createShardState(0, 0);
  const started = performance.now();
  for (const e of entries) applyEntry(state, e);
  return entries.length / ((performance.now() - started) / 1000);
}

/** One core: every shard audited in this thread, one after another. */
async function oneCore(source: { kind: 'file'; dataDir: string } | { kind: 'pg'; urls: string[] },
  total: number): Promise<number> {
  const started = performance.now();
  for (let shard = 0; shard < SHARDS; shard++) {
    const report = await auditShard({ source, shard, asOfSequence: null, asOfTime: null,
      tenants: null, balancesAtEnd: false, statement: null, snapshotDir: null, progress: null,
      slot: 0 });
    if (report.findings.length > 0) throw new Error(`bench journal has findings: shard ${shard}`);
  }
  return total / ((performance.now() - started) / 1000);
}

const quiet = { write: (): boolean => true };

/** The whole CLI path with `workers` threads; returns entries/s over all threads. */
async function cli(args: string[], total: number): Promise<number> {
  const started = performance.now();
  const code = await runAudit([...args, '--quiet'], { stdout: quiet, stderr: quiet });
  if (code !== 0) throw new Error(`audit exited ${code}`);
  return total / ((performance.now() - started) / 1000);
}

async function measure(name: string, runs: number, fn: () => Promise<number>) {
  const rates: number[] = [];
  for (let i = 0; i < runs; i++) rates.push(await fn());
  return { name, rate: median(rates) };
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

type Row = { name: string; rate: number };

async function benchFiles(
  o: AuditBenchOptions,
  dir: string,
): Promise<{ total: number; rows: Row[] }> {
  const dataDir = path.join(dir, 'data');
  const total = await generate(new FileJournal(dataDir));
  const source = { kind: 'file' as const, dataDir };
  const rows = [
    await measure('baseline: bare applyEntry (in memory)', o.runs, () => bareReplay(dataDir)),
    await measure('audit, files, 1 core', o.runs, () => oneCore(source, total)),
    await measure(`audit CLI, files, ${o.workers} threads`, o.runs,
      () => cli(['--data-dir', dataDir, '--workers', String(o.workers)], total)),
  ];
  return { total, rows };
}

async function benchPg(o: AuditBenchOptions, total: number): Promise<Row[]> {
  if (!(await pgReachable())) return [];
  const db = `ledger_bench_audit_${process.pid}`;
  await admin(`CREATE DATABASE ${db}`);
  try {
    const url = `postgres://postgres@127.0.0.1:5432/${db}`;
    const written = await generate(new PgJournal([url], { podId: 'bench' }));
    if (written !== total) throw new Error(`PostgreSQL journal has ${written} entries`);
    const source = { kind: 'pg' as const, urls: [url] };
    return [
      await measure('audit, PostgreSQL COPY, 1 core', o.runs, () => oneCore(source, total)),
      await measure(`audit CLI, PostgreSQL, ${o.workers} threads`, o.runs,
        () => cli(['--pg', url, '--workers', String(o.workers)], total)),
    ];
  } finally {
    await admin(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
  }
}

export async function benchAudit(o: AuditBenchOptions): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-audit-'));
  try {
    const { total, rows: fileRows } = await benchFiles(o, dir);
    const rows = [...fileRows, ...(await benchPg(o, total))];
    const baseline = rows[0]?.rate ?? Number.NaN;
    const table = rows.map((r) => {
      const threads = /(\d+) threads/.exec(r.name)?.[1];
      const perCore = threads === undefined ? r.rate : r.rate / Math.min(Number(threads), SHARDS);
      return { scenario: r.name, 'entries/s': fmtInt(r.rate), 'per core': fmtInt(perCore),
        'vs baseline': (r.rate / baseline).toFixed(2) };
    });
    printTable(`audit replay, ${fmtInt(total)} entries in ${SHARDS} shards, median of ` +
      `${o.runs} runs (target: 1,000,000 entries/s per core)`, table);
    writeResult('audit', { settings: { ...o, shards: SHARDS, entries: total }, rows });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const runs = Number(process.env.RUNS ?? 3);
  benchAudit({ runs, seconds: 0, workers: Number(process.env.WORKERS ?? 2) }).catch((err) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
