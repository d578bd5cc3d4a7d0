// Test helpers for the Kafka relay: saved cursors, waiting for the relay to catch up, and
// consuming a whole topic into an EventAudit. Reads only; changes nothing it did not create.

import { Kafka, logLevel } from 'kafkajs';
import pg from 'pg';
import { EventAudit, type AuditReport } from '../../src/relay-consumer.js';
import { consumeAll, type Consumed } from './kafka.js';

/** relay_cursor of every database, merged (shards live in exactly one). */
export async function savedCursors(urls: readonly string[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const url of urls) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const res = await client.query<{ shard: number; sequence: string }>(
        'SELECT shard, sequence FROM relay_cursor');
      for (const r of res.rows) out.set(r.shard, Number(r.sequence));
    } catch {
      // table not there yet: no cursor saved
    } finally {
      await client.end();
    }
  }
  return out;
}

export async function waitUntil(
  check: () => Promise<boolean> | boolean,
  ms: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what}`);
}

/** Waits until every shard's saved cursor equals its journal head. */
export async function waitCaughtUp(
  urls: readonly string[],
  heads: ReadonlyMap<number, number>,
  ms = 60_000,
): Promise<void> {
  await waitUntil(async () => {
    const saved = await savedCursors(urls);
    for (const [shard, head] of heads) if ((saved.get(shard) ?? 0) !== head) return false;
    return true;
  }, ms, 'the relay to catch up');
}

export interface TopicContents {
  report: AuditReport;
  messages: Consumed[];
}

/** Consumes every message the topic holds now (up to its high watermarks) into an audit. */
export async function consumeTopic(brokers: string[], topic: string): Promise<TopicContents> {
  const kafka = new Kafka({ brokers, clientId: 'test-offsets', logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  let total = 0;
  for (const o of offsets) {
    // The mock keeps only a partition's newest messages: a test producing too much would lose
    // its oldest events to retention and report them as gaps. Say so instead.
    if (Number(o.low) !== 0) throw new Error(`partition ${o.partition} trimmed to ${o.low}`);
    total += Number(o.high);
  }
  const audit = new EventAudit();
  const messages: Consumed[] = [];
  const consumer = await consumeAll(brokers, topic, (m) => {
    messages.push(m);
    audit.add(m.key, m.value, m.headers);
  });
  try {
    await waitUntil(() => messages.length >= total, 60_000, `${total} messages`);
  } finally {
    await consumer.stop();
  }
  return { report: audit.report(), messages };
}

/** A report with no gap, no conflicting re-delivery, no invalid message, no reorder. */
export function problemsOf(report: AuditReport): string[] {
  const problems: string[] = [];
  for (const [shard, s] of Object.entries(report.shards)) {
    if (s.missing.length > 0) problems.push(`shard ${shard} missing ${s.missing.slice(0, 10)}`);
  }
  if (report.conflicts > 0) problems.push(`${report.conflicts} conflicting re-deliveries`);
  if (report.invalid.length > 0) problems.push(`invalid ${report.invalid.slice(0, 5)}`);
  problems.push(...report.orderViolations.slice(0, 10));
  return problems;
}
