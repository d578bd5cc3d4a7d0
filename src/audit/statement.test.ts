import { describe, expect, test } from 'vitest';
import type { Envelope } from '../../protocol/types.js';
import { applyBatch, createShardState } from '../../shards/state-machine.js';
import { buildStatement, statementCsv } from './statement.js';

const DAY = 86_400_000;

function ledger() {
  const state = createShardState(0, 1);
  const run = (now: number, cmds: Envelope['cmd'][]): void =>
    applyBatch(state, cmds.map((cmd) => ({ tenant: 't', cmd })), now, [], []);
  const t = (id: string, from: string, to: string, amount: bigint, pending = false) => ({
    op: 'transfer' as const, id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'EUR', description: 'a, "quoted" text', paymentTypeId: null, pending,
    timeoutSeconds: null });
  run(DAY, [
    { op: 'createAccount', id: 'bank', currencyCode: 'EUR', allowNegative: true, metadata: '{}' },
    { op: 'createAccount', id: 'me', currencyCode: 'EUR', allowNegative: false, metadata: '{}' },
    t('f', 'bank', 'me', 500n)]);
  run(2 * DAY, [t('h', 'me', 'bank', 200n, true), t('p', 'me', 'bank', 50n)]);
  run(3 * DAY, [{ op: 'post', id: 'h', amountMinor: 120n }]);
  return state;
}

describe('account statements', () => {
  test('a period in the middle has opening, rows and closing that add up', () => {
    const findings: unknown[] = [];
    const s = buildStatement(ledger(), { tenant: 't', accountId: 'me', fromMs: 2 * DAY,
      toMs: 3 * DAY }, (f) => findings.push(f));
    expect(findings).toEqual([]);
    expect(s?.openingBalanceMinor).toBe('500');
    expect(s?.rows.map((r) => [r.kind, r.postedChangeMinor, r.balanceMinor, r.availableMinor]))
      .toEqual([['pending', '0', '500', '300'], ['post', '-50', '450', '250']]);
    expect(s?.closingBalanceMinor).toBe('450');
    expect(s?.closingAvailableMinor).toBe('250');
  });

  test('posting a hold for less releases the whole hold', () => {
    const s = buildStatement(ledger(), { tenant: 't', accountId: 'me', fromMs: 3 * DAY,
      toMs: 4 * DAY }, () => undefined);
    expect(s?.rows.map((r) => [r.kind, r.amountMinor, r.balanceMinor, r.availableMinor]))
      .toEqual([['post-pending', '120', '330', '330']]);
  });

  test('an account the shard does not hold gives no statement', () => {
    expect(buildStatement(ledger(), { tenant: 't', accountId: 'x', fromMs: 0, toMs: DAY },
      () => undefined)).toBeNull();
  });

  test('CSV quotes fields that need it and frames the rows with opening and closing', () => {
    const s = buildStatement(ledger(), { tenant: 't', accountId: 'bank', fromMs: 0,
      toMs: 5 * DAY }, () => undefined);
    if (s === null) throw new Error('no statement');
    s.rows[1] = { ...s.rows[1], transactionId: 'x,"y"' } as (typeof s.rows)[number];
    const lines = statementCsv(s).split('\r\n');
    expect(lines[1]).toBe(',1970-01-01T00:00:00.000Z,opening,,,,,,0,0');
    expect(lines[3]).toContain(',"x,""y""",');
    expect(lines[lines.length - 2]).toBe(',1970-01-06T00:00:00.000Z,closing,,,,,,-330,-330');
  });
});
