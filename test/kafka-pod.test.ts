// A real pod on PostgreSQL with LEDGER_KAFKA_BROKERS set: its acknowledged payments come out
// of Kafka as events, without anything but the configuration (src/server.ts starts the relay).

import { afterEach, beforeEach, expect, it } from 'vitest';
import { startPod, type Pod } from './api-support.js';
import { createTestDatabases, type TestDatabases } from './support/pg.js';
import { startMockKafka, type MockKafka } from './support/kafka.js';
import { consumeTopic, problemsOf, waitUntil } from './support/relay-check.js';
import { accountsOf, decodeLedgerEvents, type LedgerEvent } from '../protocol/ledger-events.js';

let kafka: MockKafka;
let dbs: TestDatabases;
let pod: Pod | undefined;

beforeEach(async () => {
  [kafka, dbs] = await Promise.all([startMockKafka(), createTestDatabases(2)]);
});

afterEach(async () => {
  await pod?.stop();
  await kafka.stop();
  await dbs.drop();
});

it('turns acknowledged payments of a pod into events', async () => {
  pod = await startPod({ pgUrls: dbs.urls, kafkaBrokers: kafka.brokers });
  const client = await pod.tenant('acme');
  for (const id of ['alice', 'bob']) {
    const allowNegative = id === 'alice';
    const r = await client.createAccount({ id, currencyCode: 'EUR', allowNegative });
    expect(r.status).toBe(201);
  }
  const t = await client.transfer({ id: 'tx-1', fromAccountId: 'alice', toAccountId: 'bob',
    amountMinor: '1250', currencyCode: 'EUR' });
  expect(t.status).toBe(201);

  let events: LedgerEvent[] = [];
  await waitUntil(async () => {
    const { report, messages } = await consumeTopic(kafka.brokers, kafka.topic);
    expect(problemsOf(report)).toEqual([]);
    events = messages.flatMap((m) => {
      const d = decodeLedgerEvents(m.value, 'json');
      return d.ok && m.key === 'acme' ? d.envelope.events : [];
    });
    return events.length >= 3;
  }, 30_000, 'three events of tenant acme');
  // One event per entry, in the tenant's order: the two openings, then the transfer (a
  // re-delivery, at least once, would repeat an eventId: counted once here).
  events = [...new Map(events.map((e) => [e.eventId, e])).values()];
  expect(events.map((e) => [e.type, accountsOf(e)])).toEqual([
    ['account.created', ['alice']],
    ['account.created', ['bob']],
    ['transaction.posted', ['alice', 'bob']],
  ]);
  const posted = events.find((e) => e.type === 'transaction.posted');
  expect(posted).toMatchObject({ transactionId: 'tx-1', amountMinor: '1250', currencyCode: 'EUR' });
  const metrics = await pod.server.metrics.text();
  expect(metrics).toMatch(/ledger_relay_events_total [1-9]/);
}, 90_000);
