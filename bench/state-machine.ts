// State machine throughput on one thread: applyBatch of simple posted transfers (batches of
// 8190 and of 256) and applyEntry replay of the journal they wrote. Asserts nothing.
// `--baseline DIR` loads a second build (its shards/ and protocol/) and measures it in the
// same run, so before/after ratios come from one machine state.

import { pathToFileURL } from 'node:url';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { Envelope, Outcome } from '../protocol/types.js';
import { fmtInt, median, printTable, writeResult } from './report.js';

export interface StateMachineBenchOptions {
  runs: number;
  seconds: number;
  /** root of another build (a dir holding shards/ and protocol/) to measure as the baseline */
  baseline?: string;
}

/** What one build must export for this bench (the public API, nothing internal). */
interface Build {
  name: string;
  createShardState(shard: number, epoch: number): unknown;
  applyBatch(state: unknown, envelopes: readonly Envelope[], now: number, results: Outcome[],
    entries: JournalEntry[]): void;
  applyEntry(s: unknown, e: JournalEntry): void;
  appendChain(entries: readonly JournalEntry[], prev: Uint8Array): Buffer;
  decodeAll(chunk: Buffer): JournalEntry[];
}

const TENANT = 't';
const ACCOUNTS = 1000;
/** Replay measures a journal of this many entries, written by applyBatch beforehand. */
const REPLAY_ENTRIES = 2_000_000;

async function loadBuild(name: string, root: URL): Promise<Build> {
  type Sm = { createShardState: Build['createShardState']; applyBatch: Build['applyBatch'];
    applyEntry: Build['applyEntry'] };
  type Codec = typeof import('../protocol/journal-codec.js');
  const sm = (await import(new URL('shards/state-machine.js', root).href)) as Sm;
  const codec = (await import(new URL('protocol/journal-codec.js', root).href)) as Codec;
  const encoder = new codec.EntryEncoder(1 << 20);
  return {
    name,
    createShardState: sm.createShardState,
    applyBatch: sm.applyBatch,
    applyEntry: sm.applyEntry,
    appendChain(entries, prev) {
      encoder.reset();
      encoder.appendChain(entries, prev);
      return Buffer.from(encoder.bytes());
    },
    decodeAll(chunk) {
      const out: JournalEntry[] = [];
      for (let at = 0; at < chunk.length;) {
        const r = codec.decodeEntry(chunk, at);
        if (!r.ok) throw new Error(`bench journal does not decode: ${r.error}`);
        out.push(r.entry);
        at = r.end;
      }
      return out;
    },
  };
}

function openAccounts(build: Build, state: unknown, entries: JournalEntry[]): void {
  const setup: Envelope[] = [];
  for (let a = 0; a < ACCOUNTS; a++) {
    setup.push({ tenant: TENANT, cmd: { op: 'createAccount', id: `a${a}`, currencyCode: 'USD',
      allowNegative: true, metadata: '{}' } });
  }
  const results: Outcome[] = [];
  build.applyBatch(state, setup, 1, results, entries);
  if (results.some((r) => !r.ok)) throw new Error('bench setup failed');
}

/** A batch as the worker would decode it: fresh objects and strings, short ids. */
function makeBatch(batch: Envelope[], size: number, first: number): void {
  batch.length = 0;
  for (let n = first; n < first + size; n++) {
    batch.push({ tenant: TENANT, cmd: { op: 'transfer', id: `x${n.toString(36)}`,
      fromAccountId: `a${n % ACCOUNTS}`, toAccountId: `a${(n * 7 + 1) % ACCOUNTS}`,
      amountMinor: BigInt(1 + (n % 97)), currencyCode: 'USD', description: null,
      paymentTypeId: null, pending: false, timeoutSeconds: null } });
  }
}

interface BatchRun {
  /** transfers per second of wall time spent inside applyBatch */
  wallRate: number;
  /** transfers per second of process CPU time (all threads, GC helpers too) inside applyBatch */
  cpuRate: number;
  transfers: number;
}

function cpuSeconds(from: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / 1e6;
}

function runBatches(build: Build, size: number, seconds: number): BatchRun {
  const state = build.createShardState(0, 1);
  openAccounts(build, state, []);
  const batch: Envelope[] = [];
  const results: Outcome[] = [];
  const entries: JournalEntry[] = [];
  let wall = 0;
  let cpu = 0;
  let n = 0;
  const deadline = performance.now() + seconds * 1000;
  for (let now = 2; performance.now() < deadline; now++) {
    makeBatch(batch, size, n);
    results.length = 0;
    entries.length = 0;
    const cpuFrom = process.cpuUsage();
    const started = performance.now();
    build.applyBatch(state, batch, now, results, entries);
    wall += performance.now() - started;
    cpu += cpuSeconds(cpuFrom);
    n += size;
  }
  return { wallRate: n / (wall / 1000), cpuRate: n / cpu, transfers: n };
}

/** The journal replay reads: accounts, then batches of 8190 transfers, encoded per batch. */
function writeJournal(build: Build, count: number): Buffer[] {
  const state = build.createShardState(0, 1);
  const entries: JournalEntry[] = [];
  openAccounts(build, state, entries);
  let prev: Uint8Array = new Uint8Array(32);
  const journal: Buffer[] = [];
  const batch: Envelope[] = [];
  for (let n = 0, now = 2; n < count; n += 8190, now++) {
    if (n > 0) {
      makeBatch(batch, 8190, n - 8190);
      entries.length = 0;
      build.applyBatch(state, batch, now, [], entries);
    }
    const chunk = build.appendChain(entries, prev);
    prev = chunk.subarray(chunk.length - 32);
    journal.push(chunk);
  }
  return journal;
}

interface ReplayRun {
  entries: number;
  /** entries per CPU-second inside applyEntry */
  replayRate: number;
  /** entries per CPU-second of decode (with its sha256 check) plus applyEntry */
  decodeReplayRate: number;
}

function runReplay(build: Build, journal: readonly Buffer[]): ReplayRun {
  const state = build.createShardState(0, 1);
  let count = 0;
  let replay = 0;
  let decode = 0;
  for (const chunk of journal) {
    const decodeFrom = process.cpuUsage();
    const entries = build.decodeAll(chunk);
    decode += cpuSeconds(decodeFrom);
    const cpuFrom = process.cpuUsage();
    for (let i = 0; i < entries.length; i++) build.applyEntry(state, entries[i] as JournalEntry);
    replay += cpuSeconds(cpuFrom);
    count += entries.length;
  }
  return { entries: count, replayRate: count / replay,
    decodeReplayRate: count / (replay + decode) };
}

interface Samples {
  batch8190: number[];
  batch8190Cpu: number[];
  batch256: number[];
  batch256Cpu: number[];
  replay: number[];
  decodeReplay: number[];
  replayEntries: number;
}

function emptySamples(): Samples {
  return { batch8190: [], batch8190Cpu: [], batch256: [], batch256Cpu: [], replay: [],
    decodeReplay: [], replayEntries: 0 };
}

function measureOnce(build: Build, seconds: number, into: Samples): void {
  const big = runBatches(build, 8190, seconds);
  into.batch8190.push(big.wallRate);
  into.batch8190Cpu.push(big.cpuRate);
  const small = runBatches(build, 256, seconds);
  into.batch256.push(small.wallRate);
  into.batch256Cpu.push(small.cpuRate);
  const replay = runReplay(build, writeJournal(build, REPLAY_ENTRIES));
  into.replay.push(replay.replayRate);
  into.decodeReplay.push(replay.decodeReplayRate);
  into.replayEntries = replay.entries;
  process.stdout.write(`  ${build.name}: batch 8190 ${fmtInt(big.wallRate)}/s, batch 256 ` +
    `${fmtInt(small.wallRate)}/s, replay ${fmtInt(replay.replayRate)}/s ` +
    `(${fmtInt(replay.entries)} entries), decode+replay ${fmtInt(replay.decodeReplayRate)}/s\n`);
}

const ROWS: ReadonlyArray<[string, keyof Samples, number]> = [
  ['applyBatch, batch 8190 (transfers/s, wall)', 'batch8190', 1_500_000],
  ['applyBatch, batch 8190 (transfers/CPU-s)', 'batch8190Cpu', 1_500_000],
  ['applyBatch, batch 256 (transfers/s, wall)', 'batch256', 1_500_000],
  ['applyBatch, batch 256 (transfers/CPU-s)', 'batch256Cpu', 1_500_000],
  ['applyEntry replay (entries/CPU-s)', 'replay', 1_000_000],
  ['decode (sha256) + applyEntry (entries/CPU-s)', 'decodeReplay', 1_000_000],
];

function tableRows(current: Samples, base: Samples | null): Array<Record<string, string>> {
  return ROWS.map(([label, key, target]) => {
    const now = median(current[key] as number[]);
    const row: Record<string, string> = { measure: label, target: fmtInt(target) };
    if (base !== null) {
      const before = median(base[key] as number[]);
      row['baseline (median)'] = fmtInt(before);
      row['this build (median)'] = fmtInt(now);
      row['ratio'] = (now / before).toFixed(2);
    } else {
      row['this build (median)'] = fmtInt(now);
    }
    row['vs target'] = (now / target).toFixed(2);
    return row;
  });
}

export async function benchStateMachine(opts: StateMachineBenchOptions): Promise<void> {
  const current = await loadBuild('this build', new URL('../', import.meta.url));
  const baseline = opts.baseline === undefined ? null
    : await loadBuild('baseline', pathToFileURL(opts.baseline.replace(/\/?$/, '/')));
  const samples = emptySamples();
  const baseSamples = baseline === null ? null : emptySamples();
  for (let run = 0; run < opts.runs; run++) {
    process.stdout.write(`run ${run + 1}/${opts.runs}\n`);
    // Alternate the order so neither build always runs on a warmer (or more fragmented) heap.
    if (baseline !== null && baseSamples !== null && run % 2 === 0) {
      measureOnce(baseline, opts.seconds, baseSamples);
    }
    measureOnce(current, opts.seconds, samples);
    if (baseline !== null && baseSamples !== null && run % 2 === 1) {
      measureOnce(baseline, opts.seconds, baseSamples);
    }
  }
  printTable(`state machine, one thread: ${opts.runs} runs x ${opts.seconds}s per batch size, ` +
    `1 tenant, ${ACCOUNTS} accounts, simple posted transfers, replay of ` +
    `${fmtInt(samples.replayEntries)} entries; node ${process.version} ` +
    `${process.execArgv.join(' ')}`, tableRows(samples, baseSamples));
  writeResult('state-machine', { options: opts, execArgv: process.execArgv, samples,
    baseline: baseSamples });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const arg = (name: string): string | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i === -1 ? undefined : process.argv[i + 1];
  };
  const baseline = arg('baseline');
  benchStateMachine({ runs: Number(arg('runs') ?? 3), seconds: Number(arg('seconds') ?? 3),
    ...(baseline === undefined ? {} : { baseline }) }).catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
