// Durable journal rows/s and commit latency through PgJournal.commit (group sizes 1, 100, 8190,
// two shard databases), side by side with pgbench TPC-B on the same server in the same run.
// Run: npx tsx bench/pg-journal.bench.ts [runs] [seconds]. Measures only; asserts nothing.

import { execFileSync } from 'node:child_process';
import type { JournalEntry } from '../protocol/journal-entry.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { PG_HOST, PG_PORT, PG_USER, createTestDatabases } from '../test/support/pg.js';
import { fmtInt, median, percentile, printTable, writeResult } from './report.js';

const RUNS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 5);
const GROUP_SIZES = [1, 100, 8190];
const SHARDS = 8; // 4 per database
const PGBENCH = { clients: 8, threads: 2, scale: 1 };

interface RunResult {
  rowsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  commits: number;
}

function entry(shard: number, sequence: number, epoch: number): JournalEntry {
  return {
    shard, sequence, epoch, kind: 'post', tenant: `tenant-${shard}`,
    id: `tx-${sequence.toString(36)}-${shard}-abcdefgh`, debitAccountId: 'acct-000123',
    creditAccountId: 'acct-000456', amountMinor: BigInt(sequence * 137), currencyCode: 'EUR',
    time: 1_700_000_000_000 + sequence,
    detail: sequence % 4 === 0 ? '{"description":"rent","paymentTypeId":null}' : '',
  };
}

/** Commits groups of `size` entries (round-robin over the shards) for SECONDS. */
async function runGroups(urls: string[], size: number): Promise<RunResult> {
  const journal = new PgJournal(urls, { podId: 'bench' });
  const shards = Array.from({ length: SHARDS }, (_, i) => i);
  await journal.open(shards, 0);
  const next = shards.map((s) => journal.head(s).sequence + 1);
  const latencies: number[] = [];
  let rows = 0;
  let turn = 0;
  const group: JournalEntry[] = [];
  const start = performance.now();
  const end = start + SECONDS * 1000;
  while (performance.now() < end) {
    group.length = 0;
    for (let i = 0; i < size; i++) {
      const shard = turn++ % SHARDS;
      const sequence = next[shard] ?? 1;
      next[shard] = sequence + 1;
      group.push(entry(shard, sequence, journal.epochOf(shard)));
    }
    const t = performance.now();
    await journal.commit(group);
    latencies.push(performance.now() - t);
    rows += size;
  }
  const seconds = (performance.now() - start) / 1000;
  await journal.close();
  latencies.sort((a, b) => a - b);
  return {
    rowsPerSec: rows / seconds,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    commits: latencies.length,
  };
}

function pgbenchArgs(db: string): string[] {
  return ['-h', PG_HOST, '-p', String(PG_PORT), '-U', PG_USER, db];
}

/** pgbench TPC-B (its default script) into a fresh database; returns tps. */
function runPgbench(db: string): number {
  execFileSync('pgbench', ['-i', '-q', '-s', String(PGBENCH.scale), ...pgbenchArgs(db)], {
    stdio: 'pipe',
  });
  const out = execFileSync(
    'pgbench',
    ['-c', String(PGBENCH.clients), '-j', String(PGBENCH.threads), '-T', String(SECONDS),
      ...pgbenchArgs(db)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const m = /tps = ([\d.]+)/.exec(out);
  if (!m?.[1]) throw new Error(`pgbench output without tps:\n${out}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const byGroup = new Map<number, RunResult[]>(GROUP_SIZES.map((g) => [g, []]));
  const tps: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    // fresh databases per run: every run starts from the same (empty) tables
    const dbs = await createTestDatabases(3);
    try {
      const journalUrls = dbs.urls.slice(0, 2);
      for (const size of GROUP_SIZES) byGroup.get(size)?.push(await runGroups(journalUrls, size));
      tps.push(runPgbench(dbs.names[2] as string));
    } finally {
      await dbs.drop();
    }
  }
  const baseline = median(tps);
  const rows = GROUP_SIZES.map((size) => {
    const rs = byGroup.get(size) ?? [];
    const rate = median(rs.map((x) => x.rowsPerSec));
    return {
      'group rows': size,
      'durable rows/s': fmtInt(rate),
      'commit p50 ms': median(rs.map((x) => x.p50Ms)).toFixed(2),
      'commit p99 ms': median(rs.map((x) => x.p99Ms)).toFixed(2),
      'x pgbench tps': (rate / baseline).toFixed(1),
    };
  });
  rows.push({ 'group rows': 0, 'durable rows/s': `pgbench ${fmtInt(baseline)} tps`,
    'commit p50 ms': '-', 'commit p99 ms': '-', 'x pgbench tps': '1.0' });
  printTable(
    `PgJournal.commit over 2 databases, ${SHARDS} shards, one committer, ${SECONDS} s per ` +
      `measure, median of ${RUNS} runs; baseline: pgbench TPC-B -s ${PGBENCH.scale} ` +
      `-c ${PGBENCH.clients} -j ${PGBENCH.threads} -T ${SECONDS}`,
    rows,
  );
  writeResult('pg-journal', {
    runs: RUNS, seconds: SECONDS, shards: SHARDS, databases: 2, pgbench: { ...PGBENCH, tps },
    groups: Object.fromEntries(byGroup), table: rows,
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
