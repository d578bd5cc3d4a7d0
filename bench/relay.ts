// Payments/s committed through PgJournal with the Kafka relay off vs on, in the same run, plus
// what the relay achieved (events/s, lag, catch-up). Run: npx tsx bench/relay.ts [runs]
// [seconds] [workers] [tenants per shard]. Measures only; asserts nothing. Target: <= 15%.

import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { KafkaRelay } from '../persistence/kafka-relay.js';
import { createTestDatabases } from '../test/support/pg.js';
import { startMockKafka, type MockKafka } from '../test/support/kafka.js';
import { savedCursors } from '../test/support/relay-check.js';
import type { CommitterResult, CommitterTask } from './relay-worker.js';
import { fmtInt, median, printTable, writeResult } from './report.js';

/*
 * Layout of one measurement, like a pod: `workers` committer threads (bench/relay-worker.ts),
 * each with its own PgJournal and SHARDS_PER_WORKER shards over two fresh shard databases,
 * committing GROUP_SIZE-entry groups in a closed loop; the relay (when on) on the main thread,
 * publishing to librdkafka's mock cluster (kcat) on this machine. Off and on alternate in
 * order from run to run; every measurement gets fresh databases and its own topic.
 */

const GROUP_SIZE = 100;
const SHARDS_PER_WORKER = 4;
const CATCH_UP_LIMIT_MS = 120_000;

export interface RelayBenchOptions {
  runs: number;
  seconds: number;
  workers: number;
  /** tenants interleaved in each shard: the more, the fewer events per envelope */
  tenantsPerShard: number;
}

interface Measure {
  paymentsPerSec: number;
  /** relay only */
  relayEntriesPerSec: number;
  eventsPerMessage: number;
  lagAtEndEntries: number;
  catchUpSeconds: number;
}

function commit(task: CommitterTask): Promise<CommitterResult> {
  // Under tsx this module is .ts and so is the worker; built, both are .js.
  const ts = import.meta.url.endsWith('.ts');
  const url = new URL(`./relay-worker.${ts ? 'ts' : 'js'}`, import.meta.url);
  return new Promise((resolve, reject) => {
    // Under tsx the worker registers tsx's loader itself, then imports the .ts file: here
    // `--import tsx` in a worker's execArgv does not reach the worker's own entry.
    const load = `import(${JSON.stringify(url.href)})`;
    const code = ts ? `import('tsx/esm/api').then((t) => { t.register(); return ${load}; })` : load;
    const worker = new Worker(code, { eval: true, workerData: task });
    worker.once('message', (m: CommitterResult) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => {
      if (code !== 0) reject(new Error(`committer exited with ${code}`));
    });
  });
}

async function measure(kafka: MockKafka, o: RelayBenchOptions, on: boolean, tag: string) {
  const dbs = await createTestDatabases(2);
  const relay = on ? new KafkaRelay({
    brokers: kafka.brokers, pgUrls: dbs.urls, clientId: 'bench', topic: `bench.${tag}`,
    allowAutoTopicCreation: true, refreshMs: 250,
  }) : null;
  try {
    relay?.start();
    const tasks = Array.from({ length: o.workers }, (_, w): CommitterTask => ({
      urls: dbs.urls, seconds: o.seconds, groupSize: GROUP_SIZE, podId: `bench-${w}`,
      tenantsPerShard: o.tenantsPerShard,
      shards: Array.from({ length: SHARDS_PER_WORKER }, (_, i) => w * SHARDS_PER_WORKER + i),
    }));
    const results = await Promise.all(tasks.map(commit));
    const paymentsPerSec = results.reduce((a, r) => a + r.entries / r.seconds, 0);
    if (relay === null) return { paymentsPerSec, relayEntriesPerSec: 0, eventsPerMessage: 0,
      lagAtEndEntries: 0, catchUpSeconds: 0 };
    const relayedAtEnd = relay.stats().entries;
    const total = results.reduce((a, r) => a + r.total, 0);
    const t = performance.now();
    while (relay.stats().entries < total && performance.now() - t < CATCH_UP_LIMIT_MS) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const cursors = [...(await savedCursors(dbs.urls)).values()].reduce((a, b) => a + b, 0);
    if (cursors < total) throw new Error(`relay saved ${cursors} of ${total} cursors`);
    return {
      paymentsPerSec,
      relayEntriesPerSec: relayedAtEnd / o.seconds,
      eventsPerMessage: relay.stats().entries / Math.max(1, relay.stats().messages),
      lagAtEndEntries: Math.max(0, total - relayedAtEnd),
      catchUpSeconds: (performance.now() - t) / 1000,
    };
  } finally {
    await relay?.close();
    await dbs.drop();
  }
}

export async function benchRelay(o: RelayBenchOptions): Promise<void> {
  const kafka = await startMockKafka('bench.idle');
  const off: Measure[] = [];
  const on: Measure[] = [];
  try {
    for (let run = 0; run < o.runs; run++) {
      // alternate the order so a warming or filling server favours neither side
      for (const relayOn of run % 2 === 0 ? [false, true] : [true, false]) {
        const m = await measure(kafka, o, relayOn, `${run}-${relayOn ? 'on' : 'off'}`);
        (relayOn ? on : off).push(m);
      }
    }
  } finally {
    await kafka.stop();
  }
  report(o, off, on);
}

/** The machine is shared: the 1-minute load average says how much it was. */
function loadAverage(): string {
  return os.loadavg().map((l) => l.toFixed(1)).join(' ');
}

function report(o: RelayBenchOptions, off: Measure[], on: Measure[]): void {
  const offMedian = median(off.map((m) => m.paymentsPerSec));
  const onMedian = median(on.map((m) => m.paymentsPerSec));
  const costPercent = 100 * (1 - onMedian / offMedian);
  // The machine is shared and its load swings within a minute: each run's on/off pair ran
  // back to back, so the median of the per-run ratios is the steadier figure.
  const pairedCostPercent = 100 * (1 - median(on.map((m, i) =>
    m.paymentsPerSec / (off[i]?.paymentsPerSec ?? Number.NaN))));
  const pick = (ms: Measure[], f: (m: Measure) => number): number => median(ms.map(f));
  const rows = [
    { relay: 'off', 'payments/s': fmtInt(offMedian), 'x off': '1.00', 'relay entries/s': '-',
      'events/msg': '-', 'lag at end': '-', 'catch-up s': '-' },
    { relay: 'on', 'payments/s': fmtInt(onMedian), 'x off': (onMedian / offMedian).toFixed(2),
      'relay entries/s': fmtInt(pick(on, (m) => m.relayEntriesPerSec)),
      'events/msg': pick(on, (m) => m.eventsPerMessage).toFixed(1),
      'lag at end': fmtInt(pick(on, (m) => m.lagAtEndEntries)),
      'catch-up s': pick(on, (m) => m.catchUpSeconds).toFixed(2) },
  ];
  printTable(
    `Kafka relay cost: ${o.workers} committer threads x ${SHARDS_PER_WORKER} shards, groups of ` +
      `${GROUP_SIZE}, ${o.tenantsPerShard} tenants per shard, 2 databases, ${o.seconds} s per ` +
      `measure, median of ${o.runs} runs, ${os.cpus().length} cores, load ${loadAverage()}; ` +
      'relay: JSON envelopes keyed by tenant, gzip, acks=-1, mock broker',
    rows,
  );
  process.stdout.write(`relay cost: ${costPercent.toFixed(1)}% of payments/s (medians), ` +
    `${pairedCostPercent.toFixed(1)}% (median of per-run on/off ratios); target <= 15%\n`);
  writeResult('relay', {
    settings: { ...o, groupSize: GROUP_SIZE, shardsPerWorker: SHARDS_PER_WORKER,
      loadAverage: os.loadavg() },
    off, on,
    median: { offPaymentsPerSec: offMedian, onPaymentsPerSec: onMedian, costPercent,
      pairedCostPercent },
  });
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  const [runs, seconds, workers, tenants] = process.argv.slice(2).map(Number);
  benchRelay({ runs: runs || 3, seconds: seconds || 5, workers: workers || 2,
    tenantsPerShard: tenants || 4 }).catch(
    (err: unknown) => {
      process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
