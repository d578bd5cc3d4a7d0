// Measures how journal rows get into PostgreSQL fastest: binary vs text COPY, the cost of the
// epoch-fence trigger and of a (tenant, id) index, and autocommit COPY vs BEGIN/fence/COPY/COMMIT.
// Run: npx tsx bench/pg-copy-format.bench.ts [runs]. Uses throwaway databases; asserts nothing.

import pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import type { Writable } from 'node:stream';
import { EntryEncoder, hashKey } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry, ENTRY_KINDS } from '../protocol/journal-entry.js';
import {
  CopyBinaryEncoder,
  JOURNAL_COLUMN_LIST,
  writeJournalRow,
} from '../persistence/pg-copy-binary.js';
import { migrate } from '../persistence/pg-schema.js';
import { createTestDatabases } from '../test/support/pg.js';
import { machine, median, printTable, writeResult, fmtInt } from './report.js';

const RUNS = Number(process.argv[2] ?? 5);
const GROUP = 8190;
const GROUPS_PER_RUN = 12;

interface Row {
  entry: JournalEntry;
  prevKey: string;
  hashKey: string;
}

function makeRows(shard: number, from: number, count: number): Row[] {
  const hasher = new EntryEncoder(4096);
  let prev = hashKey(ZERO_HASH);
  const rows: Row[] = [];
  for (let sequence = from; sequence < from + count; sequence++) {
    const entry: JournalEntry = {
      shard, sequence, epoch: 1, kind: 'post', tenant: 'tenant-0042',
      id: `tx-${sequence.toString(36)}-${shard}-abcdefgh`, debitAccountId: 'acct-000123',
      creditAccountId: 'acct-000456', amountMinor: BigInt(sequence * 137), currencyCode: 'EUR',
      time: 1_700_000_000_000 + sequence,
      detail: sequence % 4 === 0 ? '{"description":"rent\\tdue","paymentTypeId":null}' : '',
    };
    hasher.reset();
    const key = hasher.appendOne(entry, prev);
    rows.push({ entry, prevKey: prev, hashKey: key });
    prev = key;
  }
  return rows;
}

const binEnc = new CopyBinaryEncoder();
function encodeBinary(rows: readonly Row[]): Buffer {
  binEnc.begin();
  for (const r of rows) writeJournalRow(binEnc, r.entry, r.prevKey, r.hashKey);
  return binEnc.finish();
}

const TEXT_ESCAPES: Record<string, string> = {
  '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r',
};

function escapeText(s: string): string {
  return /[\\\t\n\r]/.test(s) ? s.replace(/[\\\t\n\r]/g, (c) => TEXT_ESCAPES[c] ?? c) : s;
}

/** bytea in COPY text format: \\x and hex (the backslash itself escaped). */
function byteaText(latin1: string): string {
  return `\\\\x${Buffer.from(latin1, 'latin1').toString('hex')}`;
}

/** The text-format alternative: one string per group, converted once. */
function encodeText(rows: readonly Row[]): Buffer {
  const lines: string[] = [];
  for (const { entry: e, prevKey, hashKey: key } of rows) {
    lines.push(
      `${e.shard}\t${e.sequence}\t${e.epoch}\t${ENTRY_KINDS.indexOf(e.kind)}\t` +
        `${escapeText(e.tenant)}\t${escapeText(e.id)}\t${escapeText(e.debitAccountId)}\t` +
        `${escapeText(e.creditAccountId)}\t${e.amountMinor}\t${escapeText(e.currencyCode)}\t` +
        `${e.time}\t${escapeText(e.detail)}\t${byteaText(prevKey)}\t${byteaText(key)}\n`,
    );
  }
  return Buffer.from(lines.join(''), 'utf8');
}

function copy(client: pg.ClientBase, sql: string, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const stream: Writable = client.query(copyFrom(sql));
    stream.once('error', reject);
    stream.once('finish', resolve);
    stream.end(data);
  });
}

type Variant = {
  name: string;
  format: 'binary' | 'text';
  /** extra DDL after the migrations */
  ddl: string;
  /** 'tx': BEGIN / SELECT FOR SHARE / COPY / COMMIT; 'call': CALL fence; COPY in one query */
  mode: 'autocommit' | 'tx' | 'call';
};

const FENCE_PROCEDURE = `
CREATE PROCEDURE bench_fence(p_shards int[], p_epochs bigint[]) LANGUAGE plpgsql AS $fn$
DECLARE r record;
BEGIN
  FOR r IN SELECT f.shard, f.epoch AS want, o.epoch AS have
    FROM unnest(p_shards, p_epochs) AS f(shard, epoch)
    LEFT JOIN LATERAL (SELECT epoch FROM shard_owner
                       WHERE shard_owner.shard = f.shard FOR SHARE) o ON true
    ORDER BY f.shard
  LOOP
    IF r.have IS DISTINCT FROM r.want THEN RAISE EXCEPTION 'stale'; END IF;
  END LOOP;
END $fn$`;

const VARIANTS: Variant[] = [
  { name: 'binary, fence trigger, autocommit (shipped)', format: 'binary', ddl: '',
    mode: 'autocommit' },
  { name: 'text, fence trigger, autocommit', format: 'text', ddl: '', mode: 'autocommit' },
  {
    name: 'binary, no trigger: BEGIN/SELECT FOR SHARE/COPY/COMMIT',
    format: 'binary',
    ddl: 'DROP TRIGGER journal_fence ON journal',
    mode: 'tx',
  },
  { name: 'binary, no trigger (fence cost)', format: 'binary',
    ddl: 'DROP TRIGGER journal_fence ON journal', mode: 'autocommit' },
  { name: 'binary, no trigger: CALL fence(...); COPY (one query)', format: 'binary',
    ddl: `DROP TRIGGER journal_fence ON journal; ${FENCE_PROCEDURE}`, mode: 'call' },
  { name: 'binary, + index (tenant, id)', format: 'binary',
    ddl: 'CREATE INDEX journal_tx ON journal (tenant, id)', mode: 'autocommit' },
];

async function commitGroup(client: pg.Client, v: Variant, rows: readonly Row[]): Promise<void> {
  const fmt = v.format === 'binary' ? '(FORMAT binary)' : '';
  const sql = `COPY journal (${JOURNAL_COLUMN_LIST}) FROM STDIN ${fmt}`;
  const data = v.format === 'binary' ? encodeBinary(rows) : encodeText(rows);
  const shard = rows[0]?.entry.shard ?? 0;
  if (v.mode === 'autocommit') return copy(client, sql, data);
  if (v.mode === 'call') return copy(client, `CALL bench_fence('{${shard}}', '{1}'); ${sql}`, data);
  await client.query('BEGIN');
  const owner = await client.query<{ epoch: string }>(
    'SELECT epoch FROM shard_owner WHERE shard = $1 FOR SHARE', [shard]);
  if (owner.rows[0]?.epoch !== '1') throw new Error('bench: stale epoch');
  await copy(client, sql, data);
  await client.query('COMMIT');
}

async function measure(url: string, v: Variant, shard: number, group: number, groups: number):
    Promise<{ rowsPerSec: number; latencies: number[] }> {
  const client = new pg.Client({ connectionString: url, options: '-c synchronous_commit=on' });
  await client.connect();
  try {
    await client.query('INSERT INTO shard_owner (shard, epoch, owner) VALUES ($1, 1, $2)',
      [shard, 'bench']);
    const all = makeRows(shard, 1, group * groups);
    const latencies: number[] = [];
    const t0 = performance.now();
    for (let g = 0; g < groups; g++) {
      const t = performance.now();
      await commitGroup(client, v, all.slice(g * group, (g + 1) * group));
      latencies.push(performance.now() - t);
    }
    const seconds = (performance.now() - t0) / 1000;
    return { rowsPerSec: (group * groups) / seconds, latencies };
  } finally {
    await client.end();
  }
}

interface Samples {
  bulk: number[];
  hundred: number[];
  single: number[];
}

/** One measurement of each kind; a CHECKPOINT first so no variant pays for another's WAL. */
async function sample(url: string, v: Variant, r: number, out: Samples): Promise<void> {
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query('CHECKPOINT');
  await admin.end();
  // single-row commits first: right after a bulk load autovacuum would be measured too
  out.single.push(median((await measure(url, v, 2000 + r, 1, 300)).latencies));
  out.hundred.push((await measure(url, v, 3000 + r, 100, 200)).rowsPerSec);
  out.bulk.push((await measure(url, v, 1000 + r, GROUP, GROUPS_PER_RUN)).rowsPerSec);
}

async function main(): Promise<void> {
  const dbs = await createTestDatabases(VARIANTS.length);
  const samples: Samples[] = VARIANTS.map(() => ({ bulk: [], hundred: [], single: [] }));
  try {
    for (const [i, v] of VARIANTS.entries()) {
      const setup = new pg.Client({ connectionString: dbs.urls[i] });
      await setup.connect();
      await migrate(setup);
      if (v.ddl) await setup.query(v.ddl);
      await setup.end();
    }
    // variants interleaved within each run, so drift over time hits them all alike
    for (let r = 0; r < RUNS; r++) {
      for (const [i, v] of VARIANTS.entries()) {
        await sample(dbs.urls[i] as string, v, r, samples[i] as Samples);
      }
    }
  } finally {
    await dbs.drop();
  }
  const rows = VARIANTS.map((v, i) => {
    const s = samples[i] as Samples;
    return { variant: v.name, [`rows/s @${GROUP}`]: fmtInt(median(s.bulk)),
      'rows/s @100': fmtInt(median(s.hundred)), 'p50 ms @1': median(s.single).toFixed(3) };
  });
  printTable(`COPY variants (median of ${RUNS} interleaved runs; per run ${GROUPS_PER_RUN} ` +
    `groups of ${GROUP} rows, 200 of 100 rows, 300 single-row commits)`, rows);
  writeResult('pg-copy-format', { runs: RUNS, machine: machine(), rows, samples });
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
