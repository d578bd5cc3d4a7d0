import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { FileJournal } from '../../persistence/journal-file.js';
import type { RawRecord } from '../../persistence/journal-reader.js';
import { EntryEncoder, decodeEntry, hashKey } from '../../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../../protocol/journal-entry.js';
import type { Envelope } from '../../protocol/types.js';
import { applyBatch, createShardState } from '../../shards/state-machine.js';
import { auditShard } from './audit-worker.js';
import { ShardAudit } from './shard-audit.js';

function journal(): JournalEntry[] {
  const state = createShardState(2, 1);
  const entries: JournalEntry[] = [];
  const cmds: Envelope['cmd'][] = [
    { op: 'createAccount', id: 'a', currencyCode: 'USD', allowNegative: true, metadata: '{}' },
    { op: 'createAccount', id: 'b', currencyCode: 'USD', allowNegative: false, metadata: '{}' },
  ];
  for (let i = 0; i < 20; i++) {
    cmds.push({ op: 'transfer', id: `t${i}`, fromAccountId: 'a', toAccountId: 'b',
      amountMinor: BigInt(i + 1), currencyCode: 'USD', description: null, paymentTypeId: null,
      pending: i % 3 === 0, timeoutSeconds: null });
  }
  applyBatch(state, cmds.map((cmd) => ({ tenant: 't', cmd })), 1000, [], entries);
  return entries;
}

/** Stored records as PostgreSQL keeps them: fields plus the hashes the writer computed. */
function records(entries: readonly JournalEntry[]): RawRecord[] {
  const enc = new EntryEncoder();
  let prev = hashKey(ZERO_HASH);
  return entries.map((entry) => {
    enc.reset();
    const hash = enc.appendOne(entry, prev);
    const r: RawRecord = { entry: { ...entry }, prevKey: prev, hashKey: hash, bytesKey: null };
    prev = hash;
    return r;
  });
}

function run(recs: RawRecord[]) {
  const audit = new ShardAudit({ shard: 2, asOfSequence: null, asOfTime: null, tenants: null,
    balancesAtEnd: false, statement: null, snapshot: null });
  audit.add(recs);
  return audit.finish();
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('shard audit', () => {
  test('honest records verify and replay', () => {
    const report = run(records(journal()));
    expect(report.findings).toEqual([]);
    expect(report.replayed).toBe(22);
    expect(report.totals).toEqual([
      { tenant: 't', currencyCode: 'USD', accounts: 2, sumMinor: '0' }]);
  });

  test('any edited amount, dropped or swapped record is named at its sequence', () => {
    const base = records(journal());
    fc.assert(fc.property(fc.integer({ min: 0, max: base.length - 2 }),
      fc.constantFrom('edit', 'drop', 'swap'), (i, how) => {
        const recs = base.map((r) => ({ ...r, entry: { ...r.entry } }));
        const target = recs[i];
        if (target === undefined) return;
        if (how === 'edit') target.entry.amountMinor += 1n;
        if (how === 'drop') recs.splice(i, 1);
        if (how === 'swap') recs.splice(i, 2, recs[i + 1] as RawRecord, target);
        const report = run(recs);
        expect(report.findings).toHaveLength(1);
        expect(report.findings[0]?.sequence).toBe(i + 1);
      }));
  });

  test('a journal that is not canonical (applyEntry refuses it) is a finding, not a crash', () => {
    const entries = journal();
    const post = entries.findIndex((e) => e.kind === 'post');
    const bad = entries.map((e, i) => (i === post ? { ...e, detail: 'not json' } : e));
    const report = run(records(bad));
    expect(report.findings).toMatchObject([{ sequence: post + 1, check: 'replay' }]);
  });

  test('random corruption of a segment file never crashes the audit', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ledger-audit-unit-'));
    dirs.push(dir);
    const fj = new FileJournal(dir);
    await fj.open([2], 1);
    const entries = journal();
    await fj.commit(entries.slice(0, 10));
    await fj.commit(entries.slice(10));
    await fj.close();
    const file = path.join(dir, 'shard-002', 'journal-000000000001.seg');
    const honest = readFileSync(file);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 0, max: honest.length - 1 }),
      fc.integer({ min: 1, max: 255 }), async (at, xor) => {
        const bytes = Buffer.from(honest);
        bytes[at] = (bytes[at] ?? 0) ^ xor;
        writeFileSync(file, bytes);
        const report = await auditShard({ source: { kind: 'file', dataDir: dir }, shard: 2,
          asOfSequence: null, asOfTime: null, tenants: null, balancesAtEnd: false,
          statement: null, snapshotDir: null, progress: null, slot: 0 });
        expect(report.findings.length + report.notices.length).toBeGreaterThan(0);
      }), { numRuns: 200 });
    writeFileSync(file, honest);
  });

  test('records are checked alike wherever the reader\'s batches and frames cut them', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ledger-audit-unit-'));
    dirs.push(dir);
    const fj = new FileJournal(dir);
    await fj.open([2], 1);
    const state = createShardState(2, 1);
    const entries: JournalEntry[] = [];
    applyBatch(state, ['a', 'b'].map((id) => ({ tenant: 't', cmd: { op: 'createAccount', id,
      currencyCode: 'USD', allowNegative: id === 'a', metadata: '{}' } })), 1, [], entries);
    for (let i = 0; i < 5000; i++) {
      applyBatch(state, [{ tenant: 't', cmd: { op: 'transfer', id: `t${i}`, fromAccountId: 'a',
        toAccountId: 'b', amountMinor: 1n, currencyCode: 'USD', description: null,
        paymentTypeId: null, pending: false, timeoutSeconds: null } }], 2 + i, [], entries);
    }
    // Frames of 1, 7, 2500 (more than a batch) and the rest.
    for (const [from, to] of [[0, 1], [1, 8], [8, 2508], [2508, entries.length]] as const) {
      await fj.commit(entries.slice(from, to));
    }
    await fj.close();
    const audit = () => auditShard({ source: { kind: 'file', dataDir: dir }, shard: 2,
      asOfSequence: null, asOfTime: null, tenants: null, balancesAtEnd: false, statement: null,
      snapshotDir: null, progress: null, slot: 0 });
    const clean = await audit();
    expect(clean.findings).toEqual([]);
    expect(clean.replayed).toBe(entries.length);
    const file = path.join(dir, 'shard-002', 'journal-000000000001.seg');
    const honest = readFileSync(file);
    const starts = recordStarts(honest);
    for (const seq of [1, 2, 8, 9, 2048, 2049, 2050, 2508, 2509, 4100, entries.length]) {
      const bytes = Buffer.from(honest);
      const at = (starts[seq - 1] ?? 0) + 32 + 26; // the amount's low byte
      bytes[at] = (bytes[at] ?? 0) ^ 1;
      writeFileSync(file, bytes);
      const report = await audit();
      expect(report.findings, `sequence ${seq}`).toMatchObject([{ sequence: seq, check: 'hash' }]);
      expect(report.replayed).toBe(seq - 1);
    }
    writeFileSync(file, honest);
  });
});

/** Offsets of the records of a segment file, in order (journal-file frames, journal-codec). */
function recordStarts(file: Buffer): number[] {
  const starts: number[] = [];
  for (let frame = 0; frame < file.length; frame += file.readUInt32LE(frame + 4)) {
    let off = frame + 12;
    for (let n = 0; n < file.readUInt32LE(frame + 8); n++) {
      const rec = decodeEntry(file, off);
      if (!rec.ok) throw new Error(`record at ${off}: ${rec.error}`);
      starts.push(off);
      off = rec.end;
    }
  }
  return starts;
}
