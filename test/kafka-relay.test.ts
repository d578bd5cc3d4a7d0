// The Kafka relay against a real Kafka-protocol broker (librdkafka's mock cluster via kcat)
// and real PostgreSQL: completeness, per-account order, broker outage, relay kill -9.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KafkaRelay, type RelayOptions } from '../persistence/kafka-relay.js';
import { PgJournal } from '../persistence/pg-journal.js';
import { decodeLedgerEvents, type LedgerEvent } from '../protocol/ledger-events.js';
import type { Consumed } from './support/kafka.js';
import { createTestDatabases, type TestDatabases } from './support/pg.js';
import { JournalLoad } from './support/journal-load.js';
import { startMockKafka, type MockKafka } from './support/kafka.js';
import {
  consumeTopic,
  problemsOf,
  savedCursors,
  waitCaughtUp,
  waitUntil,
} from './support/relay-check.js';

const SHARDS = [0, 1, 2, 3, 4, 5]; // 3 per database
const CHILD = fileURLToPath(new URL('./support/relay-child.ts', import.meta.url));

let kafka: MockKafka;
let dbs: TestDatabases;
const cleanups: Array<() => Promise<void>> = [];

beforeEach(async () => {
  [kafka, dbs] = await Promise.all([startMockKafka(), createTestDatabases(2)]);
});

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  await kafka.stop();
  await dbs.drop();
});

async function openJournal(): Promise<PgJournal> {
  const journal = new PgJournal(dbs.urls, { podId: 'relay-test' });
  await journal.open(SHARDS, 0);
  cleanups.push(() => journal.close());
  return journal;
}

function heads(journal: PgJournal): Map<number, number> {
  return new Map(SHARDS.map((s) => [s, journal.head(s).sequence]));
}

function relayOptions(extra: Partial<RelayOptions> = {}): RelayOptions {
  return {
    brokers: kafka.brokers, pgUrls: dbs.urls, clientId: 'relay-test',
    pollMs: 20, refreshMs: 200, retryMinMs: 50, retryMaxMs: 500, requestTimeoutMs: 1_500,
    ...extra,
  };
}

function startRelay(extra: Partial<RelayOptions> = {}): KafkaRelay {
  const relay = new KafkaRelay(relayOptions(extra));
  relay.start();
  cleanups.push(() => relay.close());
  return relay;
}

/** The events inside consumed messages, re-deliveries included. */
function eventsIn(messages: readonly Consumed[]): LedgerEvent[] {
  return messages.flatMap((m) => {
    const d = decodeLedgerEvents(m.value, 'json');
    return d.ok ? d.envelope.events : [];
  });
}

/** Commits groups in the background until stop() resolves; never waits for the relay. */
function backgroundLoad(load: JournalLoad, groupSize: number, pauseMs: number) {
  let running = true;
  const done = (async () => {
    while (running) {
      await load.commitGroup(groupSize);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
  })();
  return { stop: async () => ((running = false), await done) };
}

describe('kafka relay', () => {
  it('publishes every committed entry once, packed per tenant, in account order', async () => {
    const journal = await openJournal();
    const load = new JournalLoad(journal, SHARDS, 11);
    for (let i = 0; i < 10; i++) await load.commitGroup(60); // a backlog before the relay
    // Two relays on the same databases: per database one holds the lock, the other waits.
    const relays = [startRelay({ maxBatchEntries: 128 }), startRelay({ maxBatchEntries: 128 })];
    for (let i = 0; i < 30; i++) await load.commitGroup(50);
    await waitCaughtUp(dbs.urls, heads(journal));
    const holders = relays.map((r) => r.stats().lanes.filter((l) => l.holdsLock).length);
    expect(holders.reduce((a, b) => a + b, 0)).toBe(dbs.urls.length);

    const { report, messages } = await consumeTopic(kafka.brokers, kafka.topic);
    expect(problemsOf(report)).toEqual([]);
    expect(report.unique).toBe(load.entries);
    expect(report.events).toBe(load.entries);
    expect(report.duplicates).toBe(0);
    for (const s of SHARDS) expect(report.shards[s]?.max).toBe(journal.head(s).sequence);
    const relayed = relays.reduce((a, r) => a + r.stats().entries, 0);
    expect(relayed).toBe(load.entries);
    // Envelopes carry many events each (the point of them), keyed by tenant; the audit already
    // checked every message's key and headers against its envelope.
    expect(report.messages).toBe(messages.length);
    expect(report.messages).toBeLessThan(load.entries / 4);
    expect(new Set(messages.map((m) => m.key)).size).toBe(SHARDS.length * 2);
  }, 120_000);

  it('keeps committing through a broker outage, then catches up without a gap', async () => {
    const journal = await openJournal();
    const load = new JournalLoad(journal, SHARDS, 22);
    // kafkajs retries a timed-out request twice itself: 3 x 1 s, then the relay sees the error.
    const relay = startRelay({ maxBatchEntries: 256, requestTimeoutMs: 1_000 });
    const bg = backgroundLoad(load, 24, 5);
    await waitUntil(async () => [...(await savedCursors(dbs.urls)).values()]
      .reduce((a, b) => a + b, 0) > 300, 30_000, 'relaying to start');

    kafka.pause();
    const before = load.entries;
    await new Promise((r) => setTimeout(r, 5_000));
    const duringOutage = load.entries - before;
    const errorsDuringOutage = relay.stats().sendErrors;
    const lagDuringOutage = relay.stats().lanes.reduce((a, l) => a + l.lagEntries, 0);
    kafka.resume();

    await new Promise((r) => setTimeout(r, 1_000));
    await bg.stop();
    await waitCaughtUp(dbs.urls, heads(journal));
    // Payments never waited for the broker; the relay felt the outage and saw the lag grow.
    expect(duringOutage).toBeGreaterThan(500);
    expect(errorsDuringOutage).toBeGreaterThan(0);
    expect(lagDuringOutage).toBeGreaterThan(0);

    const { report, messages } = await consumeTopic(kafka.brokers, kafka.topic);
    expect(problemsOf(report)).toEqual([]);
    expect(report.unique).toBe(load.entries);
    // Duplicates (if the outage cut a send after the broker wrote it) are detectable: the
    // audit counted each repeated (shard, sequence) once, with identical content.
    expect(eventsIn(messages).length).toBe(report.unique + report.duplicates);
    process.stdout.write(`outage: ${duringOutage} entries committed while the broker was ` +
      `stopped, ${errorsDuringOutage} failed sends, ${report.duplicates} duplicates\n`);
  }, 120_000);

  it('resumes from the saved cursor after kill -9 of the relay process', async () => {
    const journal = await openJournal();
    const load = new JournalLoad(journal, SHARDS, 33);
    const args = JSON.stringify({
      brokers: kafka.brokers, pgUrls: dbs.urls,
      overrides: { ...relayOptions({ maxBatchEntries: 64 }), brokers: undefined,
        pgUrls: undefined },
    });
    const runChild = () => {
      const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, args],
        { stdio: ['ignore', 'ignore', 'inherit'] });
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      cleanups.push(async () => {
        proc.kill('SIGKILL');
        await exited;
      });
      return { proc, exited };
    };
    const bg = backgroundLoad(load, 30, 5);
    const first = runChild();
    await waitUntil(async () => [...(await savedCursors(dbs.urls)).values()]
      .reduce((a, b) => a + b, 0) > 600, 60_000, 'the first relay to make progress');
    first.proc.kill('SIGKILL');
    await first.exited;
    const atKill = await savedCursors(dbs.urls);
    await new Promise((r) => setTimeout(r, 500)); // commits go on with no relay at all
    const second = runChild();
    await bg.stop();
    await waitCaughtUp(dbs.urls, heads(journal));
    second.proc.kill('SIGTERM');
    await second.exited;

    const { report, messages } = await consumeTopic(kafka.brokers, kafka.topic);
    expect(problemsOf(report)).toEqual([]);
    expect(report.unique).toBe(load.entries);
    // Only events after the saved cursor can have been sent twice: the second relay started
    // from the cursor, not from the beginning.
    const seen = new Map<string, LedgerEvent[]>();
    for (const e of eventsIn(messages)) seen.set(e.eventId, [...(seen.get(e.eventId) ?? []), e]);
    // Restarting from the beginning would re-send every event up to the cursors.
    const relayedBeforeKill = [...atKill.values()].reduce((a, b) => a + b, 0);
    expect(report.duplicates).toBeLessThan(relayedBeforeKill);
    for (const [, copies] of seen) {
      const e = copies[0];
      if (e !== undefined && copies.length > 1) {
        expect(e.sequence).toBeGreaterThan(atKill.get(e.shard) ?? 0);
      }
    }
    process.stdout.write(`kill -9: cursors at kill ${JSON.stringify([...atKill])}, ` +
      `${report.duplicates} duplicates of ${report.unique} events\n`);
  }, 120_000);
});
