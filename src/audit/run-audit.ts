// `ledger audit`: selects shards, audits them (in parallel with piscina, whole shards per
// worker), compares, exports, reports. Exit code 0 only when everything verifies; never writes.

import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import os from 'node:os';
import { Piscina } from 'piscina';
import {
  databaseOfShard,
  listFileShards,
  listPgShards,
  listSegments,
  pgShardRows,
} from '../../persistence/journal-reader.js';
import { WAL_DIR, unsettledLogs } from '../../persistence/journal-wal.js';
import { shardOf } from '../../protocol/shard-key.js';
import { auditShard, type ShardTask } from './audit-worker.js';
import type { Finding, ShardReport } from './findings.js';
import { compareLive } from './live-compare.js';
import { parseAuditArgs, USAGE, UsageError, type AuditOptions } from './options.js';
import { Progress, type ProgressStream } from './progress.js';
import { humanSummary, jsonReport, allFindings, type AuditResult } from './report.js';
import { statementCsv, statementJson } from './statement.js';

export interface AuditIo {
  stdout: ProgressStream;
  stderr: ProgressStream;
}

/** Runs `ledger audit` with argv (without "audit"); resolves with the exit code. */
export async function runAudit(
  argv: string[],
  io: AuditIo = { stdout: process.stdout, stderr: process.stderr },
): Promise<number> {
  let opts: AuditOptions;
  try {
    opts = parseAuditArgs(argv, os.availableParallelism());
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr.write(`ledger audit: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (opts.help) {
    io.stdout.write(USAGE);
    return 0;
  }
  try {
    return await audit(opts, io);
  } catch (err) {
    io.stderr.write(`ledger audit: ${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
}

async function audit(opts: AuditOptions, io: AuditIo): Promise<number> {
  const started = performance.now();
  const shards = await selectShards(opts);
  const units = await Promise.all(shards.map((s) => shardUnits(opts, s)));
  const progress = new SharedArrayBuffer(Math.max(1, shards.length) * 2 * 8);
  const tasks = shards.map((shard, slot) => taskOf(opts, shard, slot, progress));
  const bar = opts.quiet ? null : new Progress(io.stderr, progress, units);
  bar?.start();
  const workers = Math.min(opts.workers, Math.max(1, tasks.length));
  let reports: ShardReport[];
  try {
    reports = await runTasks(tasks, workers, () => bar?.shardDone());
  } finally {
    bar?.stop();
  }
  reports.sort((a, b) => a.shard - b.shard);
  const extraFindings = await liveFindings(opts, reports);
  const result: AuditResult = {
    source: opts.source.kind === 'file' ? `data dir ${opts.source.dataDir}`
      : `${opts.source.urls.length} PostgreSQL database(s)`,
    shards: reports, extraFindings, workers,
    asOf: opts.asOfSequence === null && opts.asOfTime === null ? null : {
      sequence: opts.asOfSequence,
      time: opts.asOfTime === null ? null : new Date(opts.asOfTime).toISOString(),
    },
    seconds: (performance.now() - started) / 1000,
    notices: await sourceNotices(opts),
  };
  const exported = await exportStatement(opts, reports, io);
  if (opts.json !== null) {
    await writeFile(opts.json, JSON.stringify(jsonReport(result), null, 2) + '\n');
  }
  // A statement on stdout keeps stdout for itself (pipeable); the summary goes to stderr then.
  const summaryTo = opts.statement !== null && opts.out === null ? io.stderr : io.stdout;
  summaryTo.write(humanSummary(result));
  if (!exported) return 2;
  return allFindings(result).length === 0 && reports.every((r) => r.findingsDropped === 0) ? 0 : 1;
}

/**
 * An embedded data directory with write-ahead logs belongs to a running pod, or to one that
 * stopped without closing its journal. After a crash of the machine, what a worker acknowledged
 * since its last checkpoint (about a second) may be only in its log until a pod starts there.
 */
async function sourceNotices(opts: AuditOptions): Promise<string[]> {
  if (opts.source.kind !== 'file') return [];
  const logs = await unsettledLogs(opts.source.dataDir);
  if (logs === 0) return [];
  return [`${logs} write-ahead log(s) in ${path.join(opts.source.dataDir, WAL_DIR)}: a pod is ` +
    'running here or stopped without closing; after a crash of the machine, start the pod ' +
    'once (it puts the logs back) and audit again'];
}

/** Shards to audit: --shards, else every shard the source holds; narrowed to tenants' shards. */
async function selectShards(opts: AuditOptions): Promise<number[]> {
  let shards = opts.shards ?? (await listedShards(opts));
  const wanted = [...(opts.tenants ?? []), ...(opts.statement ? [opts.statement.tenant] : [])];
  const narrow = opts.shardCount !== null && (opts.tenants !== null || opts.statement !== null);
  if (narrow && opts.shardCount !== null) {
    const count = opts.shardCount;
    const of = new Set(wanted.map((t) => shardOf(t, count)));
    shards = shards.filter((s) => of.has(s));
  }
  return shards;
}

async function listedShards(opts: AuditOptions): Promise<number[]> {
  const source = opts.source;
  if (source.kind === 'file') return listFileShards(source.dataDir);
  const n = source.urls.length;
  const lists = await Promise.all(source.urls.map(async (url, i) =>
    (await listPgShards(url)).filter((s) => databaseOfShard(s, n) === i)));
  return lists.flat().sort((a, b) => a - b);
}

/** Expected work per shard for the ETA: segment bytes, or rows. */
async function shardUnits(opts: AuditOptions, shard: number): Promise<number> {
  const source = opts.source;
  if (source.kind === 'file') {
    const segments = await listSegments(source.dataDir, shard);
    return segments.reduce((n, s) => n + s.bytes, 0);
  }
  const url = source.urls[databaseOfShard(shard, source.urls.length)];
  return url === undefined ? 0 : pgShardRows(url, shard);
}

function taskOf(
  opts: AuditOptions,
  shard: number,
  slot: number,
  sab: SharedArrayBuffer,
): ShardTask {
  return {
    source: opts.source, shard, slot, progress: sab,
    asOfSequence: opts.asOfSequence, asOfTime: opts.asOfTime, tenants: opts.tenants,
    balancesAtEnd: opts.compareUrl !== null || opts.tenants !== null,
    statement: opts.statement, snapshotDir: opts.snapshotDir,
  };
}

function workerUrl(): URL {
  // Under tsx / vitest this module is .ts and so is its sibling; built, both are .js.
  const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
  return new URL(`./audit-worker.${ext}`, import.meta.url);
}

/** Whole shards per task; in this thread when one worker suffices. */
async function runTasks(
  tasks: ShardTask[],
  workers: number,
  onDone: () => void,
): Promise<ShardReport[]> {
  const done = (r: ShardReport): ShardReport => {
    onDone();
    return r;
  };
  if (workers <= 1) {
    const reports: ShardReport[] = [];
    for (const task of tasks) reports.push(done(await auditShard(task)));
    return reports;
  }
  const url = workerUrl();
  const pool = new Piscina({
    filename: url.href, minThreads: workers, maxThreads: workers, idleTimeout: 1000,
    execArgv: url.pathname.endsWith('.ts') ? ['--import', 'tsx'] : [],
  });
  try {
    return await Promise.all(tasks.map(async (t) => done((await pool.run(t)) as ShardReport)));
  } finally {
    await pool.destroy();
  }
}

async function liveFindings(opts: AuditOptions, reports: ShardReport[]): Promise<Finding[]> {
  if (opts.compareUrl === null || opts.token === null) return [];
  const heads = new Map(reports.map((r) => [r.shard, r.head.sequence]));
  const rows = reports.flatMap((r) => r.balances ?? []);
  return compareLive(opts.compareUrl, opts.token, rows, (s) => heads.get(s) ?? 0);
}

/** Writes the statement; false (exit 2) when no audited shard holds the account. */
async function exportStatement(
  opts: AuditOptions,
  reports: ShardReport[],
  io: AuditIo,
): Promise<boolean> {
  if (opts.statement === null) return true;
  const statement = reports.find((r) => r.statement !== null)?.statement ?? null;
  if (statement === null) {
    io.stderr.write(`ledger audit: statement: no audited shard holds account ` +
      `${opts.statement.accountId} of tenant ${opts.statement.tenant} in a verified state\n`);
    return false;
  }
  const text = opts.format === 'csv' ? statementCsv(statement) : statementJson(statement);
  if (opts.out === null) io.stdout.write(text);
  else await writeFile(opts.out, text);
  return true;
}
