// Compares recomputed balances with a live pod's answers (GET /api/v1/accounts/{id}). Reads
// only; meaningful when the tenant is quiet, since the pod may be ahead of the journal read.

import type { BalanceRow, Finding } from './findings.js';

const CONCURRENCY = 8;
const TIMEOUT_MS = 10_000;
const FIELDS = ['postedDebits', 'postedCredits', 'pendingDebits', 'pendingCredits'] as const;

function describe(row: Record<string, unknown>): string {
  return FIELDS.map((f) => `${f} ${String(row[f])}`).join(', ');
}

async function fetchAccount(
  baseUrl: string,
  token: string,
  id: string,
): Promise<Record<string, unknown> | null> {
  const url = `${baseUrl.replace(/\/+$/, '')}/api/v1/accounts/${encodeURIComponent(id)}`;
  const res = await fetch(url, {
    headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status}`);
  const body: unknown = await res.json();
  if (typeof body !== 'object' || body === null) throw new Error(`GET ${url}: not an object`);
  return body as Record<string, unknown>;
}

/**
 * One 'live' finding per account whose totals differ (or that the pod does not know). Throws
 * on transport errors and non-404 HTTP errors: those are I/O failures, not findings.
 */
export async function compareLive(
  baseUrl: string,
  token: string,
  rows: readonly BalanceRow[],
  headOf: (shard: number) => number,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < rows.length; i = next++) {
      const row = rows[i];
      if (row === undefined) continue;
      const live = await fetchAccount(baseUrl, token, row.accountId);
      const expected = describe(row as unknown as Record<string, unknown>);
      const found = live === null ? 'no such account' : describe(live);
      if (expected === found) continue;
      findings.push({
        shard: row.shard, sequence: headOf(row.shard), check: 'live', expected, found,
        detail: `tenant ${row.tenant} account ${row.accountId}: the pod answers differently ` +
          'from the journal (is the tenant still receiving payments?)',
      });
    }
  };
  await Promise.all(Array.from({ length: Math.min(CONCURRENCY, rows.length) }, worker));
  return findings.sort((a, b) => a.shard - b.shard || a.detail.localeCompare(b.detail));
}
