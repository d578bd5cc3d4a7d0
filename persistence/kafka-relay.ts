// Kafka relay: publishes every COMMITTED journal entry as ledger events (protocol/ledger-events),
// at least once, in order per account; saves each shard's cursor only after the broker's ack.
// Runs beside the write path, never in it: a slow or absent broker never holds up a payment.

import { promisify } from 'node:util';
import zlib from 'node:zlib';
import kafkajs, { CompressionTypes, Kafka, Partitioners, logLevel, type Producer } from 'kafkajs';
import pg from 'pg';
import type { Logger } from 'pino';
import type { JournalEntry } from '../protocol/journal-entry.js';
import {
  DEFAULT_ENVELOPE_LIMITS,
  eventMessagesOf,
  type EventFormat,
} from '../protocol/ledger-events.js';
import { migrate } from './pg-schema.js';
import { loadCursors, relayShards, saveCursors, tryLockRelay } from './relay-cursor.js';
import { readCommitted, RelaySourceError, sourceLag } from './relay-source.js';

/*
 * One lane per shard database, each on one connection that holds the database's relay lock
 * (relay-cursor.ts): read the rows after the cursors (relay-source.ts), pack them into
 * envelopes (one event per entry, up to maxEnvelopeEvents of one tenant per Kafka message,
 * protocol/ledger-events.ts), send those with ONE producer.sendBatch (acks=-1, gzip), and
 * after the ack save the cursors. While a batch is
 * being sent the lane reads the next one: the in-memory window is at most two batches of at
 * most maxBatchEntries entries per lane, whatever the backlog. The journal itself is the
 * buffer: during a broker outage the lane retries the same batch with backoff and reads
 * nothing more; commits go on, and the lane catches up from the cursors when the broker is back.
 *
 * Why envelopes: kafkajs costs ~12 us of CPU per message and ~2.5 us per header, whatever the
 * message's size; the relay shares the pod's CPU with the payments. Measured on 2 loaded
 * cores (encode + sendBatch, acks=-1, mock broker): two messages per transfer (keyed by
 * account) ~47 us of relay CPU per entry, a third of the payments/s in bench/relay.ts; one
 * message per entry ~29 us; envelopes of up to 64 events ~8 us with gzip level 6, then most
 * of it JSON encoding, COPY decoding and gzip (hence level 1, below).
 *
 * Per-account order: an account lives in one tenant, a tenant in one shard, a shard in one
 * database, so one lane carries all of a tenant's events, in sequence order, and it sends
 * the next batch only after the previous one was acknowledged. The key is the tenant, so all
 * of them land in one partition; within a batch kafkajs puts each partition's messages, in
 * order, into one request. A failed send is retried whole: events already written are written
 * again later (duplicates, same (shard, sequence)), but a newer event never gets ahead of an
 * older one that was not written.
 *
 * Non-idempotent producer (acks=-1): the test broker (librdkafka's mock cluster) refuses
 * idempotent producers, and consumers dedupe anyway. Against real Kafka `idempotent: true`
 * removes most retry duplicates; the contract stays at least once.
 */

export interface RelayObserver {
  /** `events` (one per journal entry) in `messages` envelopes were acknowledged */
  produced(events: number, messages: number): void;
  sendError(): void;
  lag(entries: number, seconds: number): void;
}

export interface RelayOptions {
  brokers: string[];
  /** the shard databases (LEDGER_PG_URLS); the relay follows every shard each one holds */
  pgUrls: string[];
  clientId: string;
  /** default 'ledger.events' (provisioned by deploy/kafka/topics) */
  topic?: string;
  format?: EventFormat;
  compression?: 'gzip' | 'none';
  /** events per Kafka message at most (default 64): all of one tenant, in sequence order */
  maxEnvelopeEvents?: number;
  /** uncompressed bytes per Kafka message at most (default 64 KiB; one bigger event travels
   * alone; keep it well under the topic's max.message.bytes) */
  maxEnvelopeBytes?: number;
  /** entries read per send per lane, across its shards (default 1024; kafkajs groups a
   * batch's messages by partition in O(n² / partitions), so bigger is slower) */
  maxBatchEntries?: number;
  /** wait between reads when caught up (default 50 ms) */
  pollMs?: number;
  /** wait before reading the next batch when the last read was not full (default 50 ms) */
  lingerMs?: number;
  /** first and last retry delay after a failed send or database error (200 ms, 5 s) */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** how often shards, lag and the lock are checked (default 1 s) */
  refreshMs?: number;
  /** client-side timeout of one Kafka request, and the broker's ack timeout (default 10 s) */
  requestTimeoutMs?: number;
  /** false in production: topics come from deploy/, never ad hoc */
  allowAutoTopicCreation?: boolean;
  idempotent?: boolean;
  observer?: RelayObserver;
  logger?: Logger;
}

type Settings = Required<Omit<RelayOptions, 'observer' | 'logger'>>;

export class RelayClosedError extends Error {
  readonly code = 'relay_closed';
  constructor() {
    super('relay_closed: the relay is closing');
    this.name = 'RelayClosedError';
  }
}

export interface LaneStats {
  database: number;
  holdsLock: boolean;
  shards: number;
  lagEntries: number;
  lagSeconds: number;
}

export interface RelayStats {
  /** journal entries acknowledged; one event each */
  entries: number;
  /** Kafka messages (envelopes) acknowledged */
  messages: number;
  sendErrors: number;
  lanes: LaneStats[];
}

function intSetting(name: string, v: number | undefined, fallback: number, max: number): number {
  const value = v ?? fallback;
  if (!Number.isSafeInteger(value) || value < 1 || value > max) {
    throw new RangeError(`KafkaRelay: ${name} must be an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

function settingsOf(o: RelayOptions): Settings {
  if (o.brokers.length === 0) throw new RangeError('KafkaRelay: brokers must not be empty');
  if (o.pgUrls.length === 0) throw new RangeError('KafkaRelay: pgUrls must not be empty');
  return {
    brokers: o.brokers, pgUrls: o.pgUrls, clientId: o.clientId,
    topic: o.topic ?? 'ledger.events',
    format: o.format ?? 'json',
    compression: o.compression ?? 'gzip',
    maxBatchEntries: intSetting('maxBatchEntries', o.maxBatchEntries, 1024, 65_536),
    maxEnvelopeEvents: intSetting('maxEnvelopeEvents', o.maxEnvelopeEvents,
      DEFAULT_ENVELOPE_LIMITS.maxEvents, 4_096),
    maxEnvelopeBytes: intSetting('maxEnvelopeBytes', o.maxEnvelopeBytes,
      DEFAULT_ENVELOPE_LIMITS.maxBytes, 900 * 1024),
    pollMs: intSetting('pollMs', o.pollMs, 50, 60_000),
    lingerMs: intSetting('lingerMs', o.lingerMs, 50, 60_000),
    retryMinMs: intSetting('retryMinMs', o.retryMinMs, 200, 60_000),
    retryMaxMs: intSetting('retryMaxMs', o.retryMaxMs, 5_000, 600_000),
    refreshMs: intSetting('refreshMs', o.refreshMs, 1_000, 600_000),
    requestTimeoutMs: intSetting('requestTimeoutMs', o.requestTimeoutMs, 10_000, 600_000),
    allowAutoTopicCreation: o.allowAutoTopicCreation ?? false,
    idempotent: o.idempotent ?? false,
  };
}

const gzip = promisify(zlib.gzip);
const unzip = promisify(zlib.unzip);

/**
 * Why gzip at level 1: kafkajs's own gzip codec uses zlib's default level 6, which on our
 * envelopes (repetitive JSON) cost 4 to 9 us of CPU per event, about as much as all the rest
 * of the relay; level 1 costs ~1 us and its output is ~15% larger (21 vs 18 bytes per event,
 * from ~330 raw). Installed through kafkajs's codec registry, the way kafkajs-snappy and
 * kafkajs-lz4 plug in. It is process-wide, and harmless to share: the wire format is the same
 * gzip, only how hard the producer tries changes; decompression is what kafkajs does.
 */
function useFastGzip(): void {
  kafkajs.CompressionCodecs[CompressionTypes.GZIP] = () => ({
    compress: (encoder: { buffer: Buffer }) => gzip(encoder.buffer, { level: 1 }),
    decompress: (buffer: Buffer) => unzip(buffer),
  });
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class KafkaRelay {
  readonly settings: Settings;
  private readonly producer: Producer;
  private readonly observer: RelayObserver | undefined;
  private readonly log: Logger | undefined;
  private connecting: Promise<void> | null = null;
  private readonly lanes: Lane[];
  private readonly stopper = new AbortController();
  private readonly stopped: Promise<never>;
  private running: Promise<void>[] = [];
  private failedSends = 0;
  private totals = { entries: 0, messages: 0, sendErrors: 0 };

  constructor(options: RelayOptions) {
    this.settings = settingsOf(options);
    this.observer = options.observer;
    this.log = options.logger;
    if (this.settings.compression === 'gzip') useFastGzip();
    const kafka = new Kafka({
      clientId: this.settings.clientId,
      brokers: this.settings.brokers,
      requestTimeout: this.settings.requestTimeoutMs,
      connectionTimeout: 3_000,
      retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1_000 },
      // kafkajs logs every failed attempt at ERROR; the relay logs an outage once (sendFailed).
      logCreator: () => (entry) => this.log?.debug({ kafkajs: entry.log }, 'kafkajs'),
      logLevel: logLevel.WARN,
    });
    this.producer = kafka.producer({
      idempotent: this.settings.idempotent,
      allowAutoTopicCreation: this.settings.allowAutoTopicCreation,
      createPartitioner: Partitioners.DefaultPartitioner,
    });
    this.stopped = new Promise<never>((_, reject) => {
      this.stopper.signal.addEventListener('abort', () => reject(new RelayClosedError()));
    });
    this.stopped.catch(() => undefined); // raced against, never awaited alone
    this.lanes = this.settings.pgUrls.map((url, i) => new Lane(this, url, i));
  }

  /** Starts one loop per database; returns at once (nothing here waits for Kafka). */
  start(): void {
    if (this.running.length > 0) throw new Error('KafkaRelay: already started');
    this.running = this.lanes.map((lane) => lane.run());
  }

  get closing(): boolean {
    return this.stopper.signal.aborted;
  }

  /** Stops reading; a batch being sent is given up (re-sent by the next relay: at least once). */
  async close(): Promise<void> {
    this.stopper.abort();
    await Promise.all(this.running);
    await this.producer.disconnect().catch(() => undefined); // nothing left to deliver
  }

  stats(): RelayStats {
    return { ...this.totals, lanes: this.lanes.map((l) => l.stats()) };
  }

  /** Sleeps `ms`, or less when the relay closes. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.closing) return resolve();
      const onAbort = (): void => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.stopper.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      this.stopper.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /**
   * Sends the events of `entries` until the broker acknowledges them all (acks=-1), retrying
   * with exponential backoff. Throws RelayClosedError only when the relay closes first.
   */
  async send(entries: readonly JournalEntry[]): Promise<void> {
    const s = this.settings;
    const messages = eventMessagesOf(entries, s.format,
      { maxEvents: s.maxEnvelopeEvents, maxBytes: s.maxEnvelopeBytes });
    let delay = this.settings.retryMinMs;
    for (;;) {
      if (this.closing) throw new RelayClosedError();
      try {
        await this.untilClosed(this.connect());
        await this.untilClosed(this.producer.sendBatch({
          acks: -1,
          timeout: this.settings.requestTimeoutMs,
          compression: this.settings.compression === 'gzip'
            ? CompressionTypes.GZIP : CompressionTypes.None,
          topicMessages: [{ topic: this.settings.topic, messages }],
        }));
        this.sent(entries.length, messages.length);
        return;
      } catch (err) {
        if (err instanceof RelayClosedError) throw err;
        this.sendFailed(err);
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.settings.retryMaxMs);
      }
    }
  }

  /** `work`, or RelayClosedError as soon as the relay closes (a hung request never blocks). */
  untilClosed<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.stopped]);
  }

  private connect(): Promise<void> {
    this.connecting ??= this.producer.connect().catch((err: unknown) => {
      this.connecting = null;
      throw err;
    });
    return this.connecting;
  }

  private sent(events: number, messages: number): void {
    if (this.failedSends > 0) {
      this.log?.info({ failedSends: this.failedSends }, 'relay: broker acknowledging again');
      this.failedSends = 0;
    }
    this.totals.entries += events;
    this.totals.messages += messages;
    this.observer?.produced(events, messages);
  }

  private sendFailed(err: unknown): void {
    this.totals.sendErrors++;
    this.observer?.sendError();
    if (this.failedSends++ === 0) {
      this.log?.warn({ err: describe(err) }, 'relay: send failed, retrying with backoff');
    }
  }

  /** Lanes report lag; the relay reports the sum of entries and the oldest age. */
  lagChanged(): void {
    let entries = 0;
    let seconds = 0;
    for (const lane of this.lanes) {
      const s = lane.stats();
      entries += s.lagEntries;
      seconds = Math.max(seconds, s.lagSeconds);
    }
    this.observer?.lag(entries, seconds);
  }

  logger(): Logger | undefined {
    return this.log;
  }
}

/** The relay loop of one shard database. */
class Lane {
  private client: pg.Client | null = null;
  private holdsLock = false;
  /** broker-acknowledged and saved, per shard */
  private acked = new Map<number, number>();
  /** read (maybe not yet acknowledged), per shard: where the next read starts */
  private readAt = new Map<number, number>();
  private lag = { entries: 0, seconds: 0 };
  private refreshedAt = 0;
  /** some shard had more rows than one read takes: the lane is behind */
  private lastReadFull = false;

  constructor(
    private readonly relay: KafkaRelay,
    private readonly url: string,
    private readonly index: number,
  ) {}

  stats(): LaneStats {
    return {
      database: this.index, holdsLock: this.holdsLock, shards: this.acked.size,
      lagEntries: this.lag.entries, lagSeconds: this.lag.seconds,
    };
  }

  /** Sessions until the relay closes: a database or lock problem ends one, the next retries. */
  async run(): Promise<void> {
    const s = this.relay.settings;
    let delay = s.retryMinMs;
    while (!this.relay.closing) {
      try {
        await this.session();
        delay = s.retryMinMs;
      } catch (err) {
        if (err instanceof RelayClosedError) break;
        this.relay.logger()?.warn({ database: this.index, err: describe(err) },
          'relay: database session failed, retrying');
        await this.relay.sleep(delay);
        delay = Math.min(delay * 2, s.retryMaxMs);
      } finally {
        await this.endClient();
      }
    }
  }

  private async session(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.url,
      application_name: `ledger-relay:${this.relay.settings.clientId}`.slice(0, 63),
      keepAlive: true,
      connectionTimeoutMillis: 5_000,
    });
    // A dead idle connection is reported by the next query; the listener keeps it from
    // becoming an uncaught 'error' event.
    client.on('error', () => undefined);
    this.client = client;
    await client.connect();
    await migrate(client);
    while (!(await tryLockRelay(client))) {
      if (this.relay.closing) return;
      await this.relay.sleep(this.relay.settings.refreshMs * 2); // another pod relays this db
    }
    this.holdsLock = true;
    this.relay.logger()?.info({ database: this.index }, 'relay: lane active');
    await this.refresh(client, true);
    await this.pump(client);
  }

  /** Read, send, save; the next read overlaps the current send (a window of two batches). */
  private async pump(client: pg.Client): Promise<void> {
    let next = this.read(client);
    next.catch(() => undefined); // awaited below; this only marks it handled meanwhile
    while (!this.relay.closing) {
      const batch = await next;
      if (batch.length === 0) {
        await this.relay.sleep(this.relay.settings.pollMs);
        await this.refresh(client, false);
        next = this.read(client);
        next.catch(() => undefined);
        continue;
      }
      const sending = this.relay.send(batch);
      sending.catch(() => undefined);
      next = this.readAfter(client, this.lastReadFull ? 0 : this.relay.settings.lingerMs);
      next.catch(() => undefined);
      // While the broker is away the lane keeps reporting lag (it grows: that is the alert).
      while (!(await settledWithin(sending, this.relay.settings.refreshMs))) {
        await this.refresh(client, false);
      }
      await sending;
      const ends = lastSequences(batch);
      await saveCursors(client, ends);
      for (const [shard, sequence] of ends) this.acked.set(shard, sequence);
      await this.refresh(client, false);
    }
    await next.catch(() => undefined);
  }

  /**
   * Why wait before reading when the last read was not full: every batch costs a fixed price
   * whatever its size (a COPY, a sendBatch, a cursor COMMIT, the messages of envelopes cut
   * short). A relay that keeps up would otherwise read again the moment its send started and
   * send a thin batch per round trip. Like Kafka's linger.ms, it trades lingerMs of event
   * latency (the send overlaps it) for fuller batches; a relay that is behind never waits.
   */
  private async readAfter(client: pg.Client, ms: number): Promise<JournalEntry[]> {
    if (ms > 0) await this.relay.sleep(ms);
    return this.read(client);
  }

  /** The next committed rows after readAt, advancing readAt past them. */
  private async read(client: pg.Client): Promise<JournalEntry[]> {
    const shards = this.readAt.size;
    this.lastReadFull = false;
    if (shards === 0) return [];
    const perShard = Math.max(1, Math.floor(this.relay.settings.maxBatchEntries / shards));
    const entries = await readCommitted(client, this.readAt, perShard);
    for (const [shard, sequence] of lastSequences(entries)) {
      if (sequence - (this.readAt.get(shard) ?? 0) >= perShard) this.lastReadFull = true;
      this.readAt.set(shard, sequence);
    }
    return entries;
  }

  /** New shards (a pod opened them) and lag, at most every refreshMs unless forced. */
  private async refresh(client: pg.Client, force: boolean): Promise<void> {
    const now = Date.now();
    if (!force && now - this.refreshedAt < this.relay.settings.refreshMs) return;
    this.refreshedAt = now;
    const shards = await relayShards(client);
    const fresh = shards.filter((s) => !this.acked.has(s));
    if (fresh.length > 0) {
      for (const [shard, sequence] of await loadCursors(client, fresh)) {
        this.acked.set(shard, sequence);
        this.readAt.set(shard, sequence);
      }
    }
    const lag = await sourceLag(client, this.acked, Date.now());
    this.lag = { entries: lag.entries, seconds: lag.seconds };
    if (lag.gaps.length > 0) {
      throw new RelaySourceError('journal_gap', `shards ${lag.gaps}: the row after the cursor ` +
        'is missing while later rows exist');
    }
    this.relay.lagChanged();
  }

  private async endClient(): Promise<void> {
    const client = this.client;
    this.client = null;
    this.holdsLock = false;
    // Unsaved progress is forgotten: the next session starts from the saved cursors.
    this.acked.clear();
    this.readAt.clear();
    if (client !== null) await client.end().catch(() => undefined); // already broken: fine
  }
}

/** Whether `work` settled within `ms` (its outcome is left to the caller's await). */
async function settledWithin(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const tick = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const done = work.then(() => true, () => true);
  try {
    return await Promise.race([done, tick]);
  } finally {
    clearTimeout(timer);
  }
}

/** The last sequence per shard of entries grouped by shard in sequence order. */
function lastSequences(entries: readonly JournalEntry[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const e of entries) out.set(e.shard, e.sequence);
  return out;
}
