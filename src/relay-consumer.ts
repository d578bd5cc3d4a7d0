// Example consumer of ledger events: unpacks envelopes, dedupes events by (shard, sequence),
// proves it saw every sequence of every shard without gaps, and checks per-account order.
// Reads only; never acks anything. Run: npx tsx src/relay-consumer.ts [--topic t] [--seconds n]

import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Kafka, logLevel } from 'kafkajs';
import {
  accountsOf,
  decodeLedgerEvents,
  type EventFormat,
  type LedgerEvent,
} from '../protocol/ledger-events.js';
import { loadConfig } from './config.js';

/*
 * What a downstream consumer must do with at-least-once delivery, in one place
 * (protocol/EVENTS.md):
 *   - identity: an EVENT is (shard, sequence); a message is only its envelope, which may be
 *     cut differently on a re-delivery. A re-delivered event must be identical to its first
 *     delivery, else it is reported as `conflicts`;
 *   - completeness: per shard every sequence 1..max, else `missing`;
 *   - order: per account (and tenant), each NEW event has a higher sequence than the last one.
 * Memory grows with the events seen (a digest per event): fine for an example and for tests.
 * A production consumer keeps, per (tenant, shard), the last sequence it applied and skips
 * events at or below it: per tenant, first deliveries arrive in increasing sequence and a
 * re-delivery only repeats older events. (Not per shard alone: two tenants of a shard may share
 * a partition, and their envelopes interleave in any order.) The headers first-sequence and
 * last-sequence let it skip a wholly applied envelope without parsing it.
 */

export interface AuditReport {
  /** Kafka messages (envelopes) consumed */
  messages: number;
  /** events inside them, re-deliveries included */
  events: number;
  unique: number;
  duplicates: number;
  /** re-delivered events whose content differs from the first delivery (must be 0) */
  conflicts: number;
  invalid: string[];
  /** per shard: highest sequence seen, and sequences below it never seen */
  shards: Record<number, { max: number; missing: number[] }>;
  /** new events that arrived after a newer one of the same account or tenant */
  orderViolations: string[];
}

/** Feed it every consumed message; ask it for a report at any time. */
export class EventAudit {
  private readonly digests = new Map<string, string>();
  private readonly sequences = new Map<number, Set<number>>();
  private readonly lastOf = new Map<string, number>();
  private counts = { messages: 0, events: 0, duplicates: 0, conflicts: 0 };
  private readonly invalid: string[] = [];
  private readonly orderViolations: string[] = [];

  constructor(private readonly format: EventFormat = 'json') {}

  /** Returns the events of the message seen for the first time (none for an invalid one). */
  add(key: string, value: Buffer, headers: Record<string, string>): LedgerEvent[] {
    this.counts.messages++;
    const where = `${key}@${headers.shard}:${headers['first-sequence']}`;
    const decoded = decodeLedgerEvents(value, this.format);
    if (!decoded.ok) return this.reject(`${where}: ${decoded.error}`);
    const env = decoded.envelope;
    const first = env.events[0]?.sequence;
    const last = env.events[env.events.length - 1]?.sequence;
    if (key !== env.tenant || headers.tenant !== env.tenant ||
      headers.shard !== String(env.shard) || headers['first-sequence'] !== String(first) ||
      headers['last-sequence'] !== String(last)) {
      return this.reject(`${where}: key or headers do not match the envelope`);
    }
    const fresh: LedgerEvent[] = [];
    for (const e of env.events) {
      this.counts.events++;
      // Parsed then re-serialized: equal content gives equal bytes, whatever the envelope.
      const digest = createHash('sha1').update(JSON.stringify(e)).digest('base64');
      const firstDigest = this.digests.get(e.eventId);
      if (firstDigest !== undefined) {
        this.counts.duplicates++;
        if (firstDigest !== digest) this.counts.conflicts++;
        continue;
      }
      this.digests.set(e.eventId, digest);
      this.track(e);
      fresh.push(e);
    }
    return fresh;
  }

  private reject(problem: string): LedgerEvent[] {
    if (this.invalid.length < 100) this.invalid.push(problem);
    return [];
  }

  private track(e: LedgerEvent): void {
    let seen = this.sequences.get(e.shard);
    if (seen === undefined) this.sequences.set(e.shard, (seen = new Set()));
    seen.add(e.sequence);
    const streams = [`tenant ${e.tenant}`, ...accountsOf(e).map((a) => `${e.tenant}:${a}`)];
    for (const stream of streams) {
      const last = this.lastOf.get(stream) ?? 0;
      if (e.sequence < last && this.orderViolations.length < 100) {
        this.orderViolations.push(`${stream}: sequence ${e.sequence} after ${last}`);
      }
      this.lastOf.set(stream, Math.max(last, e.sequence));
    }
  }

  report(): AuditReport {
    const shards: AuditReport['shards'] = {};
    for (const [shard, seen] of this.sequences) {
      let max = 0;
      for (const sequence of seen) max = Math.max(max, sequence);
      const missing: number[] = [];
      for (let s = 1; s <= max; s++) if (!seen.has(s)) missing.push(s);
      shards[shard] = { max, missing };
    }
    return {
      ...this.counts, unique: this.digests.size, invalid: [...this.invalid], shards,
      orderViolations: [...this.orderViolations],
    };
  }
}

function headersOf(raw: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(raw ?? {})) if (v !== undefined) out[k] = String(v);
  return out;
}

/** Consumes `topic` from the beginning for `seconds` and prints the audit report. */
export async function runConsumer(brokers: string[], topic: string, seconds: number) {
  const audit = new EventAudit();
  const kafka = new Kafka({ brokers, clientId: 'ledger-consumer', logLevel: logLevel.WARN });
  const consumer = kafka.consumer({ groupId: `ledger-example-${process.pid}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      audit.add(message.key?.toString() ?? '', message.value ?? Buffer.alloc(0),
        headersOf(message.headers));
    },
  });
  await new Promise((r) => setTimeout(r, seconds * 1000));
  await consumer.disconnect();
  return audit.report();
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { topic: { type: 'string', default: 'ledger.events' },
      seconds: { type: 'string', default: '10' }, brokers: { type: 'string' } },
  });
  const brokers = values.brokers?.split(',') ?? loadConfig().kafkaBrokers;
  if (brokers.length === 0) throw new Error('set --brokers or LEDGER_KAFKA_BROKERS');
  const report = await runConsumer(brokers, values.topic, Number(values.seconds));
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

const entry = process.argv[1];
if (entry !== undefined && import.meta.url === pathToFileURL(entry).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
    process.exitCode = 1;
  });
}
