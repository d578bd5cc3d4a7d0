// Measures the embedded journal and its codec on this machine and prints the numbers: codec
// encode+hash and decode+verify rates, and group commits (1/100/8190 entries, 1/8/32 shards):
// latency, and CPU per group of this process's every thread (the fs thread pool's included).
// Run: npx tsx bench/journal-file.bench.ts [runs]. Measures only; asserts nothing.

import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { EntryEncoder, decodeEntry, hashKey } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import { FileJournal } from '../persistence/journal-file.js';

const RUNS = Number(process.argv[2] ?? 5);

function entry(shard: number, sequence: number): JournalEntry {
  return {
    shard, sequence, epoch: 1, kind: 'post', tenant: 'tenant-0042',
    id: `tx-${sequence.toString(36)}-${shard}-abcdefgh`, debitAccountId: 'acct-000123',
    creditAccountId: 'acct-000456', amountMinor: BigInt(sequence * 137), currencyCode: 'EUR',
    time: 1_700_000_000_000 + sequence,
    detail: sequence % 4 === 0 ? '{"description":"rent","paymentTypeId":null}' : '',
  };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

function benchCodec(): void {
  const n = 200_000;
  const entries = Array.from({ length: n }, (_, i) => entry(1, i + 1));
  const enc = new EntryEncoder(64 * 1024 * 1024);
  const encRates: number[] = [];
  const decRates: number[] = [];
  for (let r = 0; r < RUNS + 1; r++) {
    enc.reset();
    let t = performance.now();
    enc.appendChain(entries, ZERO_HASH);
    const encMs = performance.now() - t;
    const buf = enc.bytes();
    t = performance.now();
    let off = 0;
    let key = hashKey(ZERO_HASH);
    while (off < buf.length) {
      const d = decodeEntry(buf, off);
      if (!d.ok || !d.follows(key)) throw new Error('bench: chain broken');
      key = d.hashKey;
      off = d.end;
    }
    const decMs = performance.now() - t;
    if (r === 0) continue; // warm-up
    encRates.push(n / encMs * 1000);
    decRates.push(n / decMs * 1000);
  }
  console.log(`codec (${n} entries, ${(enc.length / n).toFixed(0)} B/entry, median of ${RUNS}):`);
  console.log(`  encode+hash    ${(median(encRates) / 1e6).toFixed(2)} M entries/s/core`);
  console.log(`  decode+verify  ${(median(decRates) / 1e6).toFixed(2)} M entries/s/core`);
}

async function benchCommit(size: number, shardCount: number, groups: number): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'journal-bench-'));
  const shards = Array.from({ length: shardCount }, (_, i) => i);
  const j = new FileJournal(dir);
  await j.open(shards, 1);
  const seq = new Array<number>(shardCount).fill(0);
  const lat: number[] = [];
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  for (let g = 0; g < groups; g++) {
    const batch: JournalEntry[] = [];
    for (let i = 0; i < size; i++) {
      const s = i % shardCount;
      seq[s] = (seq[s] ?? 0) + 1;
      batch.push(entry(s, seq[s] ?? 0));
    }
    const t = performance.now();
    await j.commit(batch);
    lat.push(performance.now() - t);
  }
  const total = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  await j.close();
  await rm(dir, { recursive: true, force: true });
  const sorted = [...lat].sort((a, b) => a - b);
  const p = (q: number) => sorted[Math.floor(q * (sorted.length - 1))] ?? 0;
  console.log(`  ${String(size).padStart(5)} entries x ${String(shardCount).padStart(2)} shards: ` +
    `commit p50 ${p(0.5).toFixed(2)} ms, p99 ${p(0.99).toFixed(2)} ms, ` +
    `${Math.round((size * groups) / total * 1000).toLocaleString('en')} entries/s, ` +
    `CPU ${Math.round((cpu.user + cpu.system) / groups)} us/group (${groups} groups)`);
}

async function main(): Promise<void> {
  console.log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ` +
    `tmpdir ${tmpdir()}, UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? 4}`);
  benchCodec();
  console.log('group commit (sequential groups, one in flight):');
  for (const shardCount of [1, 8, 32]) {
    for (const size of [1, 100, 8190]) {
      if (size < shardCount) continue;
      await benchCommit(size, shardCount, size === 8190 ? 40 : 200);
    }
  }
}

await main();
