// The auditor against real persisted journals: honest journals written across restarts, torn
// tails and failovers audit clean (exit 0); tampered ones (edited, deleted, swapped, forged)
// are named by exact shard and sequence (exit 1). Embedded files, and PostgreSQL.

import { createHash } from 'node:crypto';
import {
  appendFileSync, cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { FileJournal, FRAME_MAGIC } from '../persistence/journal-file.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { FileSnapshotStore } from '../persistence/snapshot-file.js';
import { decodeEntry, entryHash } from '../protocol/journal-codec.js';
import { readPgShard } from '../persistence/journal-reader.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type { JournalSink } from '../protocol/storage.js';
import type { Command, Envelope, Outcome, TransferCmd } from '../protocol/types.js';
import { encodeSnapshot } from '../shards/snapshot-codec.js';
import { applyBatch, createShardState, type ShardState } from '../shards/state-machine.js';
import { runAudit } from '../src/audit/run-audit.js';
import { adminQuery, pgUrl } from './support/pg.js';

const T0 = Date.UTC(2024, 0, 1);
const HOUR = 3_600_000;
const ROUNDS = 6;
const SHARD_TENANTS: ReadonlyMap<number, string> = new Map([[0, 'acme'], [3, 'globex']]);
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-audit-'));
  dirs.push(dir);
  return dir;
}

function transfer(
  id: string,
  from: string,
  to: string,
  amount: bigint,
  extra: Partial<TransferCmd> = {},
): TransferCmd {
  return { op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'USD', description: null, paymentTypeId: null, pending: false,
    timeoutSeconds: null, ...extra };
}

/** One hour of a tenant's business: transfers, holds posted, voided and expiring, rejections. */
function round(r: number): Command[] {
  const cmds: Command[] = [];
  if (r === 0) {
    for (const [id, currencyCode, allowNegative] of [['bank', 'USD', true], ['alice', 'USD', false],
      ['bob', 'USD', false], ['carol', 'EUR', false]] as const) {
      cmds.push({ op: 'createAccount', id, currencyCode, allowNegative, metadata: '{}' });
    }
    cmds.push(transfer('fund', 'bank', 'alice', 100_000n));
  }
  cmds.push(transfer(`t-${r}`, 'alice', 'bob', BigInt(1000 + r), { description: `rent ${r}` }));
  cmds.push(transfer(`h-${r}`, 'alice', 'bob', 5000n, { pending: true, timeoutSeconds: 1800 }));
  cmds.push(transfer(`p-${r}`, 'alice', 'bob', 2000n, { pending: true }));
  cmds.push({ op: 'post', id: `p-${r}`, amountMinor: 1500n });
  cmds.push(transfer(`v-${r}`, 'alice', 'bob', 700n, { pending: true }));
  cmds.push({ op: 'void', id: `v-${r}` });
  cmds.push(transfer(`x-${r}`, 'alice', 'bob', 1_000_000_000n)); // insufficient funds
  cmds.push(transfer(`c-${r}`, 'alice', 'carol', 10n)); // currency mismatch
  cmds.push({ op: 'transferBatch', atomic: true, transactions: [
    transfer(`a-${r}`, 'alice', 'bob', 1n), transfer(`b-${r}`, 'alice', 'nobody', 1n)] });
  return cmds;
}

/** Drives commands through the real state machine and commits what it journals. */
class Driver {
  readonly states = new Map<number, ShardState>();

  constructor(public journal: JournalSink) {
    for (const shard of SHARD_TENANTS.keys()) this.states.set(shard, createShardState(shard, 0));
  }

  async reopen(journal: JournalSink, epoch: number): Promise<void> {
    await journal.open([...SHARD_TENANTS.keys()], epoch);
    for (const [shard, state] of this.states) state.epoch = journal.epochOf(shard);
    this.journal = journal;
  }

  async round(r: number): Promise<Outcome[]> {
    const entries: JournalEntry[] = [];
    const results: Outcome[] = [];
    for (const [shard, tenant] of SHARD_TENANTS) {
      const state = this.states.get(shard);
      if (state === undefined) throw new Error('no state');
      const envelopes: Envelope[] = round(r).map((cmd) => ({ tenant, cmd }));
      applyBatch(state, envelopes, T0 + r * HOUR, results, entries);
    }
    await this.journal.commit(entries);
    return results;
  }
}

interface Captured {
  code: number;
  out: string;
  err: string;
  report: {
    ok: boolean;
    notices?: string[];
    findings: { shard: number; sequence: number; check: string; expected: string; found: string }[];
    shards: { shard: number; entries: number; notices: string[]; snapshot: unknown;
      balances: { tenant: string; accountId: string; balanceMinor: string; pendingDebits: string }[]
        | null }[];
  };
}

async function audit(args: string[]): Promise<Captured> {
  let out = '';
  let err = '';
  const json = path.join(tempDir(), 'report.json');
  const code = await runAudit([...args, '--json', json], {
    stdout: { write: (s: string) => ((out += s), true) },
    stderr: { write: (s: string) => ((err += s), true) },
  });
  let report: Captured['report'] = { ok: false, findings: [], shards: [] };
  try {
    report = JSON.parse(readFileSync(json, 'utf8')) as Captured['report'];
  } catch {
    report.ok = false; // exit 2 writes no report; the assertions on code say so
  }
  return { code, out, err, report };
}

/** An honest embedded journal: 6 rounds, 3 restarts with new epochs, 1 torn tail cut. */
async function buildFileJournal(dir: string): Promise<Driver> {
  const data = path.join(dir, 'data');
  let journal = new FileJournal(data, { segmentBytes: 4096 });
  const driver = new Driver(journal);
  await driver.reopen(journal, 1);
  for (let r = 0; r < ROUNDS; r++) {
    if (r === 2 || r === 4) {
      await driver.journal.close();
      journal = new FileJournal(data, { segmentBytes: 4096 });
      await driver.reopen(journal, r);
    }
    if (r === 5) {
      await driver.journal.close();
      tearTail(data, 0);
      journal = new FileJournal(data, { segmentBytes: 4096 });
      await driver.reopen(journal, 9); // cuts the torn tail
    }
    await driver.round(r);
  }
  await driver.journal.close();
  return driver;
}

function segmentsOf(data: string, shard: number): string[] {
  const dir = path.join(data, `shard-${String(shard).padStart(3, '0')}`);
  return readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => path.join(dir, n));
}

/** Appends the first 40 bytes of a frame that claims 400: a write cut short by a crash. */
function tearTail(data: string, shard: number): void {
  const segs = segmentsOf(data, shard);
  const last = segs[segs.length - 1];
  if (last === undefined) throw new Error('no segment');
  const torn = Buffer.alloc(40, 7);
  torn.writeUInt32LE(FRAME_MAGIC, 0);
  torn.writeUInt32LE(400, 4);
  torn.writeUInt32LE(2, 8);
  appendFileSync(last, torn);
}

interface Located {
  file: string;
  bytes: Buffer;
  frameStart: number;
  start: number;
  end: number;
}

/** Finds the stored record of `sequence` by walking frames and records. */
function locate(data: string, shard: number, sequence: number): Located {
  for (const file of segmentsOf(data, shard)) {
    const bytes = readFileSync(file);
    for (let pos = 0; pos < bytes.length;) {
      const frameBytes = bytes.readUInt32LE(pos + 4);
      for (let off = pos + 12; off < pos + frameBytes;) {
        const rec = decodeEntry(bytes, off);
        if (!rec.ok) throw new Error(`unreadable record at ${off}`);
        if (rec.entry.sequence === sequence) {
          return { file, bytes, frameStart: pos, start: off, end: rec.end };
        }
        off = rec.end;
      }
      pos += frameBytes;
    }
  }
  throw new Error(`sequence ${sequence} not found`);
}

const AMOUNT_AT = 32 + 26;

function rehashInPlace(bytes: Buffer, start: number, end: number): void {
  createHash('sha256').update(bytes.subarray(start, end - 32)).digest().copy(bytes, end - 32);
}

/** A sequence in shard 0 whose entry is a plain 'post' with a neighbour in the same frame. */
function postSequence(data: string): number {
  for (let seq = 8; seq < 40; seq++) {
    const a = locate(data, 0, seq);
    const b = locate(data, 0, seq + 1);
    const rec = decodeEntry(a.bytes, a.start);
    if (rec.ok && rec.entry.kind === 'post' && a.frameStart === b.frameStart && a.file === b.file) {
      return seq;
    }
  }
  throw new Error('no post entry found');
}

describe('audit of an embedded journal', () => {
  let base = '';
  let data = '';

  beforeAll(async () => {
    base = tempDir();
    data = path.join(base, 'data');
    await buildFileJournal(base);
  });

  /** A private copy of the honest journal to tamper with. */
  function copy(): string {
    const copied = path.join(tempDir(), 'data');
    cpSync(data, copied, { recursive: true });
    return copied;
  }

  test('an honest journal written across restarts and a cut torn tail audits clean', async () => {
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.err).not.toMatch(/ledger audit:/);
    expect(r.report.findings).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/result: OK/);
    expect(r.report.shards.map((s) => s.shard)).toEqual([0, 3]);
    // 5 + 8 per round + 5 expired holds
    expect(r.report.shards.map((s) => s.entries)).toEqual([58, 58]);
  });

  test('parallel audit with piscina workers gives the same verdict', async () => {
    const r = await audit(['--data-dir', data, '--workers', '2']);
    expect(r.report.findings).toEqual([]);
    expect(r.code).toBe(0);
  });

  test('a torn tail still on disk is a notice, not a finding', async () => {
    const d = copy();
    tearTail(d, 3);
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(0);
    expect(r.report.shards.find((s) => s.shard === 3)?.notices.join()).toMatch(/torn tail/);
  });

  test('an edited amount is named by shard and sequence', async () => {
    const d = copy();
    const seq = postSequence(d);
    const at = locate(d, 0, seq);
    const amount = at.bytes.readBigInt64LE(at.start + AMOUNT_AT);
    at.bytes.writeBigInt64LE(amount + 1n, at.start + AMOUNT_AT);
    writeFileSync(at.file, at.bytes);
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 0, sequence: seq, check: 'hash' }]);
    expect(r.out).toMatch(new RegExp(`shard 0 sequence ${seq} hash`));
  });

  test('a deleted entry is named by shard and sequence', async () => {
    const d = copy();
    const seq = postSequence(d);
    const at = locate(d, 0, seq);
    const b = at.bytes;
    const len = at.end - at.start;
    b.writeUInt32LE(b.readUInt32LE(at.frameStart + 4) - len, at.frameStart + 4);
    b.writeUInt32LE(b.readUInt32LE(at.frameStart + 8) - 1, at.frameStart + 8);
    writeFileSync(at.file, Buffer.concat([b.subarray(0, at.start), b.subarray(at.end)]));
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 0, sequence: seq, check: 'sequence',
      expected: String(seq), found: String(seq + 1) }]);
  });

  test('two swapped entries are named by shard and sequence', async () => {
    const d = copy();
    const seq = postSequence(d);
    const a = locate(d, 0, seq);
    const b = locate(d, 0, seq + 1);
    const bytes = a.bytes;
    const swapped = Buffer.concat([bytes.subarray(0, a.start), bytes.subarray(b.start, b.end),
      bytes.subarray(a.start, a.end), bytes.subarray(b.end)]);
    writeFileSync(a.file, swapped);
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 0, sequence: seq, check: 'sequence' }]);
  });

  test('a forged hash (entry rewritten, its hash recomputed) is named', async () => {
    const d = copy();
    const seq = postSequence(d);
    const at = locate(d, 0, seq);
    at.bytes.writeBigInt64LE(at.bytes.readBigInt64LE(at.start + AMOUNT_AT) + 500n,
      at.start + AMOUNT_AT);
    rehashInPlace(at.bytes, at.start, at.end);
    writeFileSync(at.file, at.bytes);
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 0, sequence: seq, check: 'prev-hash' }]);
  });

  test('an edited last record (complete frame) is a finding, not a torn tail', async () => {
    const d = copy();
    const segs = segmentsOf(d, 3);
    const last = segs[segs.length - 1] ?? '';
    const bytes = readFileSync(last);
    bytes[bytes.length - 40] = (bytes[bytes.length - 40] ?? 0) ^ 1;
    writeFileSync(last, bytes);
    const r = await audit(['--data-dir', d, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings[0]).toMatchObject({ shard: 3 });
  });

  test('only the selected shards are audited; other shards are untouched by findings', async () => {
    const d = copy();
    const seq = postSequence(d);
    const at = locate(d, 0, seq);
    at.bytes.writeBigInt64LE(7n, at.start + AMOUNT_AT);
    writeFileSync(at.file, at.bytes);
    const r = await audit(['--data-dir', d, '--shards', '3', '--workers', '1']);
    expect(r.code).toBe(0);
    expect(r.report.shards.map((s) => s.shard)).toEqual([3]);
  });
});

describe('point in time and statements', () => {
  let data = '';

  beforeAll(async () => {
    const base = tempDir();
    data = path.join(base, 'data');
    await buildFileJournal(base);
  });

  function balance(r: Captured, tenant: string, account: string): string | undefined {
    const rows = r.report.shards.flatMap((s) => s.balances ?? []);
    return rows.find((b) => b.tenant === tenant && b.accountId === account)?.balanceMinor;
  }

  test('balances as of a time include exactly the entries up to it', async () => {
    // rounds 0-2: alice paid 1000 + 1001 + 1002 and 3 x 1500 of posted holds
    const at = new Date(T0 + 2 * HOUR + 1).toISOString();
    const r = await audit(['--data-dir', data, '--as-of-time', at, '--workers', '1']);
    expect(r.code).toBe(0);
    expect(balance(r, 'acme', 'alice')).toBe(String(100_000 - 3003 - 4500));
    expect(balance(r, 'acme', 'bob')).toBe(String(3003 + 4500));
    expect(balance(r, 'acme', 'bank')).toBe('-100000');
    const alice = r.report.shards.flatMap((s) => s.balances ?? [])
      .find((b) => b.tenant === 'acme' && b.accountId === 'alice');
    expect(alice?.pendingDebits).toBe('5000'); // h-2 still held at that time
    expect(r.out).toMatch(/balances as of time/);
  });

  test('balances as of a sequence stop right after it', async () => {
    // sequence 4: four accounts opened, nothing funded yet; sequence 5: the funding
    const four = await audit(['--data-dir', data, '--as-of-sequence', '4', '--workers', '1']);
    expect(balance(four, 'acme', 'alice')).toBe('0');
    const five = await audit(['--data-dir', data, '--as-of-sequence', '5', '--tenants', 'acme',
      '--workers', '1']);
    expect(balance(five, 'acme', 'alice')).toBe('100000');
    expect(five.report.shards.flatMap((s) => s.balances ?? []).every((b) => b.tenant === 'acme'))
      .toBe(true);
  });

  test('exports a CSV statement with opening and closing balances', async () => {
    const out = path.join(tempDir(), 'alice.csv');
    const r = await audit(['--data-dir', data, '--statement', 'acme:alice',
      '--from', new Date(T0 + HOUR).toISOString(), '--to', new Date(T0 + 3 * HOUR).toISOString(),
      '--out', out, '--workers', '1']);
    expect(r.code).toBe(0);
    const lines = readFileSync(out, 'utf8').trimEnd().split('\r\n');
    expect(lines[0]).toBe('sequence,time,kind,transactionId,counterpartyAccountId,direction,' +
      'amountMinor,postedChangeMinor,balanceMinor,availableMinor');
    // after round 0: 100000 - 1000 - 1500, with h-0 (5000) held until round 1 expires it
    expect(lines[1]).toBe(',2024-01-01T01:00:00.000Z,opening,,,,,,97500,92500');
    expect(lines[lines.length - 1]).toBe(`,2024-01-01T03:00:00.000Z,closing,,,,,,92497,87497`);
    const rent1 = lines.find((l) => l.includes(',t-1,'));
    expect(rent1).toBe(`${rent1?.split(',')[0]},2024-01-01T01:00:00.000Z,post,t-1,bob,debit,` +
      '1001,-1001,96499,96499'); // h-0 expired just before it
    // rounds 1 and 2: expiry void, t, h, p, post, v, void per round
    expect(lines.length).toBe(2 + 2 * 7 + 1);
  });

  test('exports a JSON statement on stdout', async () => {
    const r = await audit(['--data-dir', data, '--statement', 'globex:bob', '--format', 'json',
      '--workers', '1']);
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as { closingBalanceMinor: string; rows: unknown[] };
    expect(s.closingBalanceMinor).toBe(String(6015 + 9000));
    expect(r.err).toMatch(/result: OK/);
  });

  test('an unknown statement account is an error (exit 2)', async () => {
    const r = await audit(['--data-dir', data, '--statement', 'acme:nobody', '--workers', '1']);
    expect(r.code).toBe(2);
  });
});

describe('write-ahead logs of an embedded journal', () => {
  test('an open journal\'s log is a notice, not a finding; gone once the journal closes',
    async () => {
      const data = path.join(tempDir(), 'data');
      const journal = new FileJournal(data);
      await journal.open([1], 1);
      await journal.commit([{ ...open('alice', true), shard: 1, sequence: 1, epoch: 1,
        time: T0 }]);
      const during = await audit(['--data-dir', data, '--workers', '1']);
      expect(during.code).toBe(0);
      expect(during.report.findings).toEqual([]);
      expect(during.report.notices?.join('\n')).toMatch(/1 write-ahead log\(s\) in .*wal/);
      expect(during.out).toMatch(/notices:\n {2}1 write-ahead log/);
      await journal.close();
      const after = await audit(['--data-dir', data, '--workers', '1']);
      expect(after.report.notices).toEqual([]);
      expect(after.report.shards.map((s) => s.entries)).toEqual([1]);
    });
});

/** Commits hand-written entries: the chain is valid, the business facts are not. */
async function journalOf(facts: Omit<JournalEntry, 'shard' | 'sequence' | 'epoch' | 'time'>[]):
  Promise<string> {
  const data = path.join(tempDir(), 'data');
  const journal = new FileJournal(data);
  await journal.open([1], 1);
  const entries = facts.map((f, i) => ({ ...f, shard: 1, sequence: i + 1, epoch: 1, time: T0 }));
  await journal.commit(entries);
  await journal.close();
  return data;
}

const open = (id: string, allowNegative: boolean, currencyCode = 'USD') => ({
  kind: 'account-open' as const, tenant: 'acme', id, debitAccountId: '', creditAccountId: id,
  amountMinor: 0n, currencyCode, detail: `{"allowNegative":${allowNegative},"metadata":{}}`,
});
const move = (kind: 'post' | 'pending' | 'post-pending' | 'void', id: string, amount: bigint,
  detail = '{"description":null,"paymentTypeId":null,"timeoutSeconds":null}',
  from = 'alice', to = 'bob', currencyCode = 'USD') => ({
  kind, tenant: 'acme', id, debitAccountId: from, creditAccountId: to, amountMinor: amount,
  currencyCode, detail,
});

describe('business checks on a well-chained journal', () => {
  test('a forbidden negative balance is named', async () => {
    const data = await journalOf([open('alice', false), open('bob', false),
      move('post', 'x', 10n)]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 1, sequence: 3, check: 'negative-balance',
      found: '-10' }]);
  });

  test('a hold posted twice is a two-phase finding', async () => {
    const data = await journalOf([open('bank', true), open('alice', false), open('bob', false),
      move('pending', 'h', 10n, undefined, 'bank', 'bob'), move('post-pending', 'h', 10n, '',
        'bank', 'bob'), move('post-pending', 'h', 10n, '', 'bank', 'bob')]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings).toMatchObject([{ shard: 1, sequence: 6, check: 'two-phase' }]);
  });

  test('a hold both posted and voided is a two-phase finding', async () => {
    const data = await journalOf([open('bank', true), open('bob', false),
      move('pending', 'h', 10n, undefined, 'bank', 'bob'),
      move('post-pending', 'h', 10n, '', 'bank', 'bob'),
      move('void', 'h', 10n, '{"reason":"client"}', 'bank', 'bob')]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.report.findings).toMatchObject([{ sequence: 5, check: 'two-phase' }]);
  });

  test('posting a hold that never existed is a two-phase finding', async () => {
    const data = await journalOf([open('bank', true), open('bob', false),
      move('post-pending', 'ghost', 10n, '', 'bank', 'bob')]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.report.findings).toMatchObject([{ sequence: 3, check: 'two-phase' }]);
  });

  test('the same transaction id posted twice is named', async () => {
    const data = await journalOf([open('bank', true), open('bob', false),
      move('post', 'p', 10n, undefined, 'bank', 'bob'), move('post', 'p', 10n, undefined, 'bank',
        'bob')]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.report.findings).toMatchObject([{ sequence: 4, check: 'duplicate-id' }]);
  });

  test('a move across currencies breaks double entry and is named', async () => {
    const data = await journalOf([open('bank', true), open('eur', false, 'EUR'),
      move('post', 'p', 10n, undefined, 'bank', 'eur')]);
    const r = await audit(['--data-dir', data, '--workers', '1']);
    expect(r.code).toBe(1);
    expect(r.report.findings.map((f) => [f.sequence, f.check])).toEqual([[3, 'currency'],
      [3, 'double-entry'], [3, 'double-entry']]);
  });
});

describe('comparison with snapshots', () => {
  test('a snapshot that agrees with the replay matches; one that does not is named', async () => {
    const base = tempDir();
    const driver = await buildFileJournal(base);
    const data = path.join(base, 'data');
    const state = driver.states.get(0);
    if (state === undefined) throw new Error('no state');
    const store = new FileSnapshotStore(data);
    const head = new FileJournal(data);
    await head.open([0, 3], 99);
    await store.save({ shard: 0, epoch: state.epoch, head: head.head(0),
      state: encodeSnapshot(state) });
    await head.close();
    const good = await audit(['--data-dir', data, '--compare-snapshot', '--workers', '1']);
    expect(good.code).toBe(0);
    expect(good.report.shards[0]?.snapshot).toEqual({ sequence: 58, matched: true });
    const alice = state.tenants.get('acme')?.accounts.get('alice');
    if (alice === undefined) throw new Error('no alice');
    alice.postedDebits += 1n;
    const headAgain = new FileJournal(data);
    await headAgain.open([0, 3], 99);
    await store.save({ shard: 0, epoch: state.epoch, head: headAgain.head(0),
      state: encodeSnapshot(state) });
    await headAgain.close();
    const bad = await audit(['--data-dir', data, '--compare-snapshot', '--workers', '1']);
    expect(bad.code).toBe(1);
    expect(bad.report.findings).toMatchObject([{ shard: 0, sequence: 58, check: 'snapshot' }]);
    expect(bad.out).toMatch(/account alice/);
  });
});

describe('usage', () => {
  test('bad arguments exit 2 with the usage text', async () => {
    const r = await audit(['--data-dir', '/x', '--pg', 'postgres://h/db']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/exactly one of --data-dir/);
    expect(r.err).toMatch(/usage: ledger audit/);
  });

  test('a missing data directory is an I/O error (exit 2)', async () => {
    const r = await audit(['--data-dir', path.join(tempDir(), 'nope')]);
    expect(r.code).toBe(2);
  });
});

/** One query on a test database, on a connection of its own. */
async function sql(url: string, text: string, values: unknown[] = []): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text, values);
  } finally {
    await client.end();
  }
}

describe('audit of a PostgreSQL journal', () => {
  const prefix = `ledger_audit_${process.pid}`;
  const created: string[] = [];
  const honest = [`${prefix}_a`, `${prefix}_b`];

  async function createDb(name: string, template?: string): Promise<void> {
    const from = template === undefined ? '' : ` TEMPLATE ${template}`;
    await adminQuery(`CREATE DATABASE ${name}${from}`);
    created.push(name);
  }

  beforeAll(async () => {
    for (const name of honest) await createDb(name);
    const urls = honest.map(pgUrl);
    const first = new PgJournal(urls, { podId: 'pod-a' });
    const driver = new Driver(first);
    await driver.reopen(first, 0);
    await driver.round(0);
    await driver.round(1);
    // Failover: pod-b claims the shards; pod-a's next group is refused by the database.
    const second = new PgJournal(urls, { podId: 'pod-b' });
    await driver.reopen(second, 0);
    const head = first.head(0);
    await expect(first.commit([{ shard: 0, sequence: head.sequence + 1, epoch: 1,
      kind: 'account-open', tenant: 'acme', id: 'zombie', debitAccountId: '',
      creditAccountId: 'zombie', amountMinor: 0n, currencyCode: 'USD',
      detail: '{"allowNegative":false,"metadata":{}}', time: T0 + 2 * HOUR }])).rejects.toThrow();
    await first.close();
    await driver.round(2);
    await driver.round(3);
    await second.close();
    const third = new PgJournal(urls, { podId: 'pod-a' }); // restart
    await driver.reopen(third, 0);
    await driver.round(4);
    await driver.round(5);
    await third.close();
  });

  afterAll(async () => {
    for (const name of created) await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  /** Copies of the honest databases to tamper with; shard 0 lives in the first. */
  async function copies(tag: string): Promise<string[]> {
    const names = honest.map((h) => `${h}_${tag}`);
    for (let i = 0; i < names.length; i++) await createDb(names[i] ?? '', honest[i]);
    return names.map(pgUrl);
  }

  async function postSeq(url: string): Promise<number> {
    const res = await sql(url, 'SELECT sequence FROM journal WHERE shard = 0 AND kind = 1 ' +
      'ORDER BY sequence OFFSET 2 LIMIT 1');
    return Number((res.rows[0] as { sequence: string }).sequence);
  }

  test('an honest journal across a failover and a restart audits clean', async () => {
    const r = await audit(['--pg', honest.map(pgUrl).join(','), '--workers', '2']);
    expect(r.report.findings).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.report.shards.map((s) => [s.shard, s.entries])).toEqual([[0, 58], [3, 58]]);
  });

  test('balances as of a time from PostgreSQL', async () => {
    const at = new Date(T0 + 2 * HOUR + 1).toISOString();
    const r = await audit(['--pg', honest.map(pgUrl).join(','), '--as-of-time', at,
      '--tenants', 'globex', '--workers', '1']);
    const rows = r.report.shards.flatMap((s) => s.balances ?? []);
    expect(rows.find((b) => b.accountId === 'alice')?.balanceMinor).toBe(String(100_000 - 7503));
  });

  test('an edited amount, a deleted row, swapped rows and a forged hash are named', async () => {
    const cases: [string, (url: string, seq: number) => Promise<void>, string][] = [
      ['edit', async (url, seq) => {
        await sql(url, 'UPDATE journal SET amount_minor = amount_minor + 1 ' +
          'WHERE shard = 0 AND sequence = $1', [seq]);
      }, 'hash'],
      ['del', async (url, seq) => {
        await sql(url, 'DELETE FROM journal WHERE shard = 0 AND sequence = $1', [seq]);
      }, 'sequence'],
      ['swap', async (url, seq) => {
        const q = 'UPDATE journal SET sequence = $2 WHERE shard = 0 AND sequence = $1';
        await sql(url, q, [seq, 1_000_000]);
        await sql(url, q, [seq + 1, seq]);
        await sql(url, q, [1_000_000, seq + 1]);
      }, 'hash'],
      ['forge', async (url, seq) => forge(url, seq), 'prev-hash'],
    ];
    for (const [tag, tamper, check] of cases) {
      const urls = await copies(tag);
      const seq = await postSeq(urls[0] ?? '');
      await tamper(urls[0] ?? '', seq);
      const r = await audit(['--pg', urls.join(','), '--workers', '1']);
      expect(r.code, tag).toBe(1);
      expect(r.report.findings, tag).toMatchObject([{ shard: 0, sequence: seq, check }]);
    }
  });
});

/** Rewrites one row's amount and recomputes its hash, leaving the next row's link alone. */
async function forge(url: string, seq: number): Promise<void> {
  for await (const batch of readPgShard(url, 0)) {
    const row = batch.records.find((r) => r.entry.sequence === seq);
    if (row === undefined) continue;
    const entry = { ...row.entry, amountMinor: row.entry.amountMinor + 500n };
    const hash = entryHash(Buffer.from(row.prevKey, 'latin1'), entry);
    await sql(url, 'UPDATE journal SET amount_minor = $2, hash = $3 WHERE shard = 0 AND ' +
      'sequence = $1', [seq, String(entry.amountMinor), Buffer.from(hash)]);
    return;
  }
  throw new Error(`sequence ${seq} not found`);
}
