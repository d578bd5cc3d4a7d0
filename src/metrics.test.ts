import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Metrics, outcomeOfStatus } from './metrics.js';

describe('Metrics', () => {
  it('keeps to its own registry', async () => {
    const before = (await client.register.getMetricsAsJSON()).length;
    const m = new Metrics();
    m.observe('http:transfer', 201, 0.002, null);
    expect((await client.register.getMetricsAsJSON()).length).toBe(before);
    expect(await m.text()).toContain('payments_processed_total');
  });

  it('counts requests by route and outcome, errors by code, and polls sources', async () => {
    const m = new Metrics();
    m.setSources({ queueDepth: () => 7, journalLag: () => 3 });
    m.observe('http:transfer', 201, 0.002, null);
    m.observe('http:transfer', 422, 0.001, 'insufficient_funds');
    m.observe('ws:getAccount', 503, 0, 'overloaded');
    m.groupCommit(64, 0.004);
    m.wsOpened();
    const text = await m.text();
    expect(text).toContain('payments_processed_total{route="http:transfer",outcome="ok"} 1');
    expect(text).toContain('payments_processed_total{route="http:transfer",outcome="rejected"} 1');
    expect(text).toContain('payments_processed_total{route="ws:getAccount",outcome="failed"} 1');
    expect(text).toContain('payment_errors_total{code="insufficient_funds"} 1');
    expect(text).toContain('ledger_shard_queue_depth 7');
    expect(text).toContain('ledger_journal_lag 3');
    expect(text).toContain('ledger_group_commit_rows_sum 64');
    expect(text).toContain('ws_connections 1');
  });

  it('maps statuses to outcomes', () => {
    expect([200, 201, 404, 429, 500, 503].map(outcomeOfStatus)).toEqual([
      'ok', 'ok', 'rejected', 'rejected', 'failed', 'failed',
    ]);
  });
});
