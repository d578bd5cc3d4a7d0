// Renders an audit result: the human summary for stdout and the machine-readable JSON report.
// Formatting only; decides nothing about what passed.

import type { BalanceRow, Finding, ShardReport } from './findings.js';

export interface AuditResult {
  source: string;
  shards: ShardReport[];
  /** findings that belong to no single shard's replay (live comparison) */
  extraFindings: Finding[];
  asOf: { sequence: number | null; time: string | null } | null;
  seconds: number;
  workers: number;
  /** about the source as a whole (not findings): e.g. unsettled write-ahead logs */
  notices: string[];
}

export function allFindings(r: AuditResult): Finding[] {
  return [...r.shards.flatMap((s) => s.findings), ...r.extraFindings];
}

function int(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

const BALANCE_LINES_MAX = 50;

function shardLines(r: AuditResult): string[] {
  const lines = ['  shard      entries  replayed  head sequence  findings  snapshot'];
  let empty = 0;
  for (const s of r.shards) {
    // An empty shard with nothing to report is one count, not a line: 64 of them hide the rest.
    if (s.entries === 0 && s.findings.length + s.findingsDropped === 0 && s.snapshot === null) {
      empty++;
      continue;
    }
    const snap = s.snapshot === null ? '-' : s.snapshot.matched ? 'matches' : 'DIFFERS';
    const findings = s.findings.length + s.findingsDropped;
    lines.push(`  ${String(s.shard).padStart(5)} ${int(s.entries).padStart(12)} ` +
      `${int(s.replayed).padStart(9)} ${int(s.head.sequence).padStart(14)} ` +
      `${String(findings).padStart(9)}  ${snap}`);
  }
  if (empty > 0) lines.push(`  (${empty} empty shards verified, not listed)`);
  return lines;
}

function findingLine(f: Finding): string {
  return `  shard ${f.shard} sequence ${f.sequence} ${f.check}: expected ${f.expected}; ` +
    `found ${f.found}${f.detail === '' ? '' : ` (${f.detail})`}`;
}

function balanceLines(rows: readonly BalanceRow[]): string[] {
  const lines = rows.slice(0, BALANCE_LINES_MAX).map((b) =>
    `  ${b.tenant} ${b.accountId} ${b.currencyCode} balance ${b.balanceMinor} ` +
    `(pending dr ${b.pendingDebits}, cr ${b.pendingCredits})`);
  if (rows.length > BALANCE_LINES_MAX) {
    lines.push(`  ... ${rows.length - BALANCE_LINES_MAX} more accounts in the JSON report`);
  }
  return lines;
}

/** The summary an operator reads: per-shard table, findings, notices, verdict. */
export function humanSummary(r: AuditResult): string {
  const entries = r.shards.reduce((n, s) => n + s.entries, 0);
  const rate = r.seconds > 0 ? entries / r.seconds : 0;
  const findings = allFindings(r);
  const dropped = r.shards.reduce((n, s) => n + s.findingsDropped, 0);
  const out = [
    `ledger audit of ${r.source}: ${r.shards.length} shards, ${int(entries)} entries in ` +
      `${r.seconds.toFixed(2)} s (${int(rate)} entries/s, ${r.workers} threads)`,
    ...shardLines(r),
  ];
  if (findings.length > 0) out.push('findings:', ...findings.map(findingLine));
  if (dropped > 0) out.push(`  ... and ${dropped} more (at most 100 kept per shard)`);
  const notices = [...r.notices.map((n) => `  ${n}`),
    ...r.shards.flatMap((s) => s.notices.map((n) => `  shard ${s.shard}: ${n}`))];
  if (notices.length > 0) out.push('notices:', ...notices);
  const balances = r.shards.flatMap((s) => s.balances ?? []);
  if (r.asOf !== null) {
    const at = r.asOf.sequence !== null ? `sequence ${r.asOf.sequence}` : `time ${r.asOf.time}`;
    out.push(`balances as of ${at}:`, ...balanceLines(balances));
  }
  out.push(findings.length === 0 && dropped === 0
    ? 'result: OK, everything verifies'
    : `result: FAILED, ${findings.length + dropped} findings`);
  return out.join('\n') + '\n';
}

/** The JSON report: everything the summary says, with every finding and balance. */
export function jsonReport(r: AuditResult): unknown {
  const findings = allFindings(r);
  return {
    ok: findings.length === 0 && r.shards.every((s) => s.findingsDropped === 0),
    source: r.source,
    seconds: r.seconds,
    workers: r.workers,
    entries: r.shards.reduce((n, s) => n + s.entries, 0),
    asOf: r.asOf,
    notices: r.notices,
    findings,
    shards: r.shards.map((s) => ({
      shard: s.shard, entries: s.entries, replayed: s.replayed, head: s.head,
      findings: s.findings.length, findingsDropped: s.findingsDropped, notices: s.notices,
      snapshot: s.snapshot, totals: s.totals, balancesAt: s.balancesAt, balances: s.balances,
      seconds: s.seconds,
    })),
  };
}
