// `ledger audit` command line: usage text and validation, once, with messages that name the
// option and what it accepts. Pure: reads argv only, never the environment or files.

import { parseArgs } from 'node:util';
import type { StatementRequest } from './statement.js';

export const USAGE = `usage: ledger audit (--data-dir DIR | --pg URL[,URL...]) [options]

Replays persisted journals independently of any running pod and verifies them: per shard the
hash chain, sequence continuity, a replay through the ledger's state machine, double entry per
tenant and currency, no forbidden negative balance, two-phase consistency.
Exit code: 0 everything verifies, 1 findings, 2 usage or I/O error.

source (one of):
  --data-dir DIR            embedded journal files (DIR/shard-NNN/journal-*.seg)
  --pg URL[,URL...]         shard databases; shard s lives in URL number s % count

selection:
  --shards LIST             shards to audit, e.g. 0,5,9-12 (default: every shard found)
  --tenants A,B             report balances, totals and business findings of these tenants
                            only (with --shard-count, audit only their shards)
  --shard-count N           the cluster's logical shard count (LEDGER_SHARDS), to find a
                            tenant's shard

point in time:
  --as-of-sequence N        balances after entry N of each shard
  --as-of-time ISO          balances after the last entry at or before ISO (UTC)

statement export:
  --statement TENANT:ACCOUNT  an account statement for [--from, --to)
  --from ISO --to ISO       the period (default: the whole history)
  --format csv|json         statement format (default csv)
  --out FILE                statement file (default: stdout)

comparison:
  --compare-url URL         compare recomputed balances with a live pod's
  --token T                 GET /api/v1/accounts/{id}; the token's tenant is --tenants
  --compare-snapshot        compare with the newest snapshot of each shard
  --snapshot-dir DIR        where file snapshots are (default: --data-dir)

output:
  --json FILE               machine-readable report
  --workers N               audit shards in parallel on N threads (default: cores)
  --quiet                   no progress on stderr
  --help                    this text
`;

export interface AuditOptions {
  source: { kind: 'file'; dataDir: string } | { kind: 'pg'; urls: string[] };
  shards: number[] | null;
  shardCount: number | null;
  tenants: string[] | null;
  asOfSequence: number | null;
  asOfTime: number | null;
  statement: StatementRequest | null;
  format: 'csv' | 'json';
  out: string | null;
  compareUrl: string | null;
  token: string | null;
  snapshotDir: string | null;
  json: string | null;
  workers: number;
  quiet: boolean;
  help: boolean;
}

export class UsageError extends Error {
  readonly code = 'usage';
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

const SHARD_MAX = 65535;
const WORKERS_MAX = 256;
const MAX_TIME_MS = 8.64e15;

const SPEC = {
  'data-dir': { type: 'string' }, pg: { type: 'string' }, shards: { type: 'string' },
  'shard-count': { type: 'string' }, tenants: { type: 'string' },
  'as-of-sequence': { type: 'string' }, 'as-of-time': { type: 'string' },
  statement: { type: 'string' }, from: { type: 'string' }, to: { type: 'string' },
  format: { type: 'string' }, out: { type: 'string' }, 'compare-url': { type: 'string' },
  token: { type: 'string' }, 'compare-snapshot': { type: 'boolean' },
  'snapshot-dir': { type: 'string' }, json: { type: 'string' }, workers: { type: 'string' },
  quiet: { type: 'boolean' }, help: { type: 'boolean' },
} as const;

function integer(name: string, value: string, min: number, max: number): number {
  const n = /^\d{1,16}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(
      `--${name} ${JSON.stringify(value)}: must be an integer from ${min} to ${max}`);
  }
  return n;
}

/** "0,5,9-12" → [0, 5, 9, 10, 11, 12], sorted and without duplicates. */
export function parseShardList(value: string): number[] {
  const shards = new Set<number>();
  for (const part of value.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (m?.[1] === undefined) {
      throw new UsageError(`--shards ${JSON.stringify(value)}: expected a list like 0,5,9-12`);
    }
    const lo = integer('shards', m[1], 0, SHARD_MAX);
    const hi = m[2] === undefined ? lo : integer('shards', m[2], 0, SHARD_MAX);
    if (hi < lo) throw new UsageError(`--shards: range ${lo}-${hi} runs backwards`);
    for (let s = lo; s <= hi; s++) shards.add(s);
  }
  return [...shards].sort((a, b) => a - b);
}

/** ISO-8601 date or date-time (UTC unless it says otherwise) → ms since the epoch. */
export function parseIsoTime(name: string, value: string): number {
  const ms = /^\d{4}-\d{2}-\d{2}([T ][\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(value)
    ? Date.parse(/[T ]/.test(value) && !/(Z|[+-]\d{2}:?\d{2})$/.test(value) ? `${value}Z` : value)
    : Number.NaN;
  if (!Number.isFinite(ms) || ms < 0) {
    throw new UsageError(`--${name} ${JSON.stringify(value)}: expected an ISO-8601 time such as ` +
      '2024-05-01T00:00:00Z');
  }
  return ms;
}

function list(value: string | undefined): string[] | null {
  if (value === undefined) return null;
  const items = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return items.length === 0 ? null : items;
}

type Values = ReturnType<typeof parseArgs<{ options: typeof SPEC; strict: true }>>['values'];

function parseSource(v: Values): AuditOptions['source'] {
  const dataDir = v['data-dir'];
  const urls = list(v.pg);
  if ((dataDir === undefined) === (urls === null)) {
    throw new UsageError('give exactly one of --data-dir DIR or --pg URL[,URL...]');
  }
  if (dataDir !== undefined) return { kind: 'file', dataDir };
  for (const url of urls ?? []) {
    if (!/^postgres(ql)?:\/\//.test(url)) {
      throw new UsageError(`--pg: ${JSON.stringify(url.replace(/\/\/[^@/]*@/, '//***@'))} ` +
        'is not a postgres:// URL');
    }
  }
  return { kind: 'pg', urls: urls ?? [] };
}

function parseStatement(v: Values): StatementRequest | null {
  if (v.statement === undefined) {
    for (const name of ['from', 'to', 'format', 'out'] as const) {
      if (v[name] !== undefined) throw new UsageError(`--${name} needs --statement TENANT:ACCOUNT`);
    }
    return null;
  }
  const colon = v.statement.indexOf(':');
  if (colon <= 0 || colon === v.statement.length - 1) {
    throw new UsageError('--statement: expected TENANT:ACCOUNT');
  }
  const fromMs = v.from === undefined ? 0 : parseIsoTime('from', v.from);
  const toMs = v.to === undefined ? MAX_TIME_MS : parseIsoTime('to', v.to);
  if (toMs <= fromMs) throw new UsageError('--to must be after --from');
  return {
    tenant: v.statement.slice(0, colon), accountId: v.statement.slice(colon + 1), fromMs, toMs,
  };
}

function parseCompare(
  v: Values,
  tenants: string[] | null,
): Pick<AuditOptions, 'compareUrl' | 'token'> {
  const url = v['compare-url'] ?? null;
  const token = v.token ?? null;
  if ((url === null) !== (token === null)) {
    throw new UsageError('--compare-url and --token go together');
  }
  if (url !== null) {
    if (!/^https?:\/\//.test(url)) throw new UsageError('--compare-url: expected http(s)://...');
    if (tenants?.length !== 1) {
      throw new UsageError('--compare-url: name the token\'s tenant with --tenants (exactly one)');
    }
  }
  return { compareUrl: url, token };
}

/** Parses `ledger audit` arguments (without the leading "audit"). Throws UsageError. */
export function parseAuditArgs(argv: readonly string[], cores: number): AuditOptions {
  let values: Values;
  try {
    values = parseArgs({ args: [...argv], options: SPEC, strict: true, allowPositionals: false })
      .values;
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = values;
  const help = v.help === true;
  if (help) return { ...defaults(), help };
  const source = parseSource(v);
  const tenants = list(v.tenants);
  if (v['as-of-sequence'] !== undefined && v['as-of-time'] !== undefined) {
    throw new UsageError('give at most one of --as-of-sequence and --as-of-time');
  }
  const format = v.format ?? 'csv';
  if (format !== 'csv' && format !== 'json') throw new UsageError('--format: csv or json');
  const snapshotDir = v['compare-snapshot'] === true
    ? v['snapshot-dir'] ?? (source.kind === 'file' ? source.dataDir : null)
    : null;
  if (v['compare-snapshot'] === true && snapshotDir === null) {
    throw new UsageError('--compare-snapshot with --pg needs --snapshot-dir DIR');
  }
  return {
    source, tenants, help, format, snapshotDir,
    shards: v.shards === undefined ? null : parseShardList(v.shards),
    shardCount: v['shard-count'] === undefined ? null
      : integer('shard-count', v['shard-count'], 1, SHARD_MAX + 1),
    asOfSequence: v['as-of-sequence'] === undefined ? null
      : integer('as-of-sequence', v['as-of-sequence'], 0, Number.MAX_SAFE_INTEGER),
    asOfTime: v['as-of-time'] === undefined ? null : parseIsoTime('as-of-time', v['as-of-time']),
    statement: parseStatement(v), out: v.out ?? null, ...parseCompare(v, tenants),
    json: v.json ?? null, quiet: v.quiet === true,
    workers: v.workers === undefined ? Math.max(1, cores)
      : integer('workers', v.workers, 1, WORKERS_MAX),
  };
}

function defaults(): AuditOptions {
  return {
    source: { kind: 'file', dataDir: '' }, shards: null, shardCount: null, tenants: null,
    asOfSequence: null, asOfTime: null, statement: null, format: 'csv', out: null,
    compareUrl: null, token: null, snapshotDir: null, json: null, workers: 1, quiet: false,
    help: false,
  };
}
