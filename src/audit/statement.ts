// Account statement for a period, recomputed from the replayed account history, and its CSV /
// JSON renderings. Reads the state only; every amount stays an exact bigint until rendered.

import type { HistoryRow, ShardState } from '../../shards/ledger-book.js';
import type { Finding, Statement, StatementRow } from './findings.js';

export interface StatementRequest {
  tenant: string;
  accountId: string;
  /** inclusive, ms since the epoch */
  fromMs: number;
  /** exclusive, ms since the epoch */
  toMs: number;
}

/** Running totals of one account while its history is walked. */
class Running {
  postedDebits = 0n;
  postedCredits = 0n;
  pendingDebits = 0n;
  pendingCredits = 0n;
  /** open holds of this account by transaction id, to release at post-pending / void */
  readonly holds = new Map<string, bigint>();

  balance(): bigint {
    return this.postedCredits - this.postedDebits;
  }

  available(): bigint {
    return this.balance() - this.pendingDebits;
  }

  /** Applies one effect; returns the signed change of the posted balance. */
  apply(row: HistoryRow, debit: boolean): bigint {
    const amount = row.amountMinor;
    switch (row.kind) {
      case 'post':
        return this.post(debit, amount);
      case 'pending':
        this.holds.set(row.id, amount);
        if (debit) this.pendingDebits += amount;
        else this.pendingCredits += amount;
        return 0n;
      case 'post-pending':
      case 'void': {
        const held = this.holds.get(row.id) ?? 0n;
        this.holds.delete(row.id);
        if (debit) this.pendingDebits -= held;
        else this.pendingCredits -= held;
        return row.kind === 'void' ? 0n : this.post(debit, amount);
      }
      default:
        return 0n;
    }
  }

  private post(debit: boolean, amount: bigint): bigint {
    if (debit) this.postedDebits += amount;
    else this.postedCredits += amount;
    return debit ? -amount : amount;
  }
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * The statement of req's account, or null when this shard does not hold it. Reports a
 * 'statement' finding when the walked history does not add up to the account's totals.
 */
export function buildStatement(
  state: ShardState,
  req: StatementRequest,
  onFinding: (f: Omit<Finding, 'shard'>) => void,
): Statement | null {
  const account = state.tenants.get(req.tenant)?.accounts.get(req.accountId);
  if (account === undefined) return null;
  const run = new Running();
  const rows: StatementRow[] = [];
  let opening: [bigint, bigint] | null = null;
  let closing: [bigint, bigint] | null = null;
  for (const h of account.history) {
    if (opening === null && h.time >= req.fromMs) opening = [run.balance(), run.available()];
    if (closing === null && h.time >= req.toMs) closing = [run.balance(), run.available()];
    const debit = h.debitAccountId === account.id;
    const change = run.apply(h, debit);
    if (h.time < req.fromMs || h.time >= req.toMs) continue;
    const open = h.kind === 'account-open';
    rows.push({
      sequence: h.sequence, time: iso(h.time), kind: h.kind, transactionId: h.id,
      counterpartyAccountId: open ? '' : debit ? h.creditAccountId : h.debitAccountId,
      direction: open ? '' : debit ? 'debit' : 'credit', amountMinor: String(h.amountMinor),
      postedChangeMinor: String(change), balanceMinor: String(run.balance()),
      availableMinor: String(run.available()),
    });
  }
  opening ??= [run.balance(), run.available()];
  closing ??= [run.balance(), run.available()];
  const totals = [run.postedDebits, run.postedCredits, run.pendingDebits, run.pendingCredits];
  const stored = [account.postedDebits, account.postedCredits, account.pendingDebits,
    account.pendingCredits];
  if (totals.some((t, i) => t !== stored[i])) {
    onFinding({ sequence: state.sequence, check: 'statement', expected: stored.join(' / '),
      found: totals.join(' / '), detail: `tenant ${req.tenant} account ${req.accountId}: ` +
        'history does not add up to the totals (posted dr / cr, pending dr / cr)' });
  }
  return {
    shard: state.shard, tenant: req.tenant, accountId: req.accountId,
    currencyCode: account.currencyCode, from: iso(req.fromMs), to: iso(req.toMs),
    openingBalanceMinor: String(opening[0]), openingAvailableMinor: String(opening[1]),
    closingBalanceMinor: String(closing[0]), closingAvailableMinor: String(closing[1]), rows,
  };
}

const CSV_COLUMNS: readonly (keyof StatementRow)[] = [
  'sequence', 'time', 'kind', 'transactionId', 'counterpartyAccountId', 'direction',
  'amountMinor', 'postedChangeMinor', 'balanceMinor', 'availableMinor',
];

function csvField(value: string | number): string {
  const s = String(value);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/**
 * CSV (RFC 4180): a header, an `opening` row at `from`, one row per entry of the period, a
 * `closing` row at `to`. Amounts are integers in minor units of the account's currency.
 */
export function statementCsv(s: Statement): string {
  const lines = [CSV_COLUMNS.join(',')];
  const edge = (kind: string, time: string, balance: string, available: string): string =>
    [ '', time, kind, '', '', '', '', '', balance, available ].map(csvField).join(',');
  lines.push(edge('opening', s.from, s.openingBalanceMinor, s.openingAvailableMinor));
  for (const row of s.rows) lines.push(CSV_COLUMNS.map((c) => csvField(row[c])).join(','));
  lines.push(edge('closing', s.to, s.closingBalanceMinor, s.closingAvailableMinor));
  return lines.join('\r\n') + '\r\n';
}

export function statementJson(s: Statement): string {
  return JSON.stringify(s, null, 2) + '\n';
}
