// Prometheus metrics on our own registry (never prom-client's global one). Every labelled child
// is bound once at construction, so observing a request allocates nothing of ours.

import client from 'prom-client';
import { ERRORS, type ErrorCode } from '../protocol/errors.js';

export const ROUTES = [
  'http:createAccount',
  'http:getAccount',
  'http:listEntries',
  'http:transfer',
  'http:transferBatch',
  'http:post',
  'http:void',
  'http:getTransaction',
  'ws:createAccount',
  'ws:getAccount',
  'ws:listEntries',
  'ws:transfer',
  'ws:transferBatch',
  'ws:post',
  'ws:void',
  'ws:getTransaction',
  'ws:invalid',
  'ws:upgrade',
  'admin',
  'metrics',
  'health',
  'internal',
  'unmatched',
] as const;
export type RouteLabel = (typeof ROUTES)[number];

export const OUTCOMES = ['ok', 'rejected', 'failed'] as const;
export type OutcomeLabel = (typeof OUTCOMES)[number];

/** 2xx/3xx → ok, 4xx → rejected (the client's doing), 5xx → failed (ours). */
export function outcomeOfStatus(status: number): OutcomeLabel {
  return status < 400 ? 'ok' : status < 500 ? 'rejected' : 'failed';
}

interface RouteChildren {
  processed: client.Counter.Internal;
  seconds: client.Histogram.Internal<string>;
}

export interface MetricsSources {
  /** commands queued in the shard actors, summed over workers */
  queueDepth?: () => number;
  /** journal entries applied but not yet durable */
  journalLag?: () => number;
}

/** 0.02: the front door's p99 objective (20 ms): a dashboard tells a p99 met from one missed. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
  2, 5];
const ROWS_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536];
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

export class Metrics {
  readonly registry = new client.Registry();
  private readonly routes: Record<RouteLabel, Record<OutcomeLabel, RouteChildren>>;
  private readonly errors: Record<ErrorCode, client.Counter.Internal>;
  private readonly commitRows: client.Histogram;
  private readonly commitSeconds: client.Histogram;
  private readonly wsConnections: client.Gauge;
  private readonly cluster: ClusterMetricSet;
  private readonly relay: RelayMetricSet;
  private sources: MetricsSources = {};

  constructor() {
    const registers = [this.registry];
    client.collectDefaultMetrics({ register: this.registry });
    const processed = new client.Counter({
      name: 'payments_processed_total',
      help: 'Requests answered, by route and outcome (ok 2xx, rejected 4xx, failed 5xx)',
      labelNames: ['route', 'outcome'],
      registers,
    });
    const seconds = new client.Histogram({
      name: 'payment_response_time_seconds',
      help: 'Time from request received to reply written, by route and outcome',
      labelNames: ['route', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    const errors = new client.Counter({
      name: 'payment_errors_total',
      help: 'Error replies by error code',
      labelNames: ['code'],
      registers,
    });
    this.routes = bindRoutes(processed, seconds);
    this.errors = bindErrors(errors);
    this.commitRows = new client.Histogram({
      name: 'ledger_group_commit_rows',
      help: 'Journal rows per group commit',
      buckets: ROWS_BUCKETS,
      registers,
    });
    this.commitSeconds = new client.Histogram({
      name: 'ledger_group_commit_seconds',
      help: 'Duration of one group commit (write + fsync / COMMIT)',
      buckets: COMMIT_BUCKETS,
      registers,
    });
    this.wsConnections = new client.Gauge({
      name: 'ws_connections',
      help: 'Open WebSocket connections',
      registers,
    });
    this.cluster = clusterMetrics(registers);
    this.relay = relayMetrics(registers);
    this.registerPolledGauges();
  }

  /** Multi-pod: commands forwarded to the owning pod. */
  forwarded(items: number): void {
    this.cluster.forwarded.inc(items);
  }

  /** Multi-pod: commands held while their shard changed hands. */
  held(items: number): void {
    this.cluster.held.inc(items);
  }

  /** Multi-pod: one shard move finished (this pod was its source). */
  move(seconds: number, outcome: 'ok' | 'aborted' | 'failed'): void {
    this.cluster.moveSeconds.labels(outcome).observe(seconds);
  }

  /** Kafka relay: events the broker acknowledged (acks=-1). */
  relayProduced(events: number): void {
    this.relay.events.inc(events);
  }

  /** Kafka relay: one failed send (it is retried with backoff). */
  relaySendError(): void {
    this.relay.sendErrors.inc();
  }

  /** Kafka relay: committed entries not yet acknowledged, and the oldest one's age. */
  relayLag(entries: number, seconds: number): void {
    this.relay.lagEntries.set(entries);
    this.relay.lagSeconds.set(seconds);
  }

  /** Connects the gauges read at scrape time (the actor host exists after the registry). */
  setSources(sources: MetricsSources): void {
    this.sources = sources;
  }

  /** One answered request; `code` when the reply was an error. */
  observe(route: RouteLabel, status: number, seconds: number, code: ErrorCode | null): void {
    const children = this.routes[route][outcomeOfStatus(status)];
    children.processed.inc();
    children.seconds.observe(seconds);
    if (code !== null) this.errors[code].inc();
  }

  /** An error inside a reply that is itself 2xx (a batch item) or not tied to a route. */
  error(code: ErrorCode): void {
    this.errors[code].inc();
  }

  groupCommit(rows: number, seconds: number): void {
    this.commitRows.observe(rows);
    this.commitSeconds.observe(seconds);
  }

  wsOpened(): void {
    this.wsConnections.inc();
  }

  wsClosed(): void {
    this.wsConnections.dec();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  private registerPolledGauges(): void {
    const sources = (): MetricsSources => this.sources;
    new client.Gauge({
      name: 'ledger_shard_queue_depth',
      help: 'Commands queued for the shard actors of this pod',
      registers: [this.registry],
      collect() {
        const read = sources().queueDepth;
        if (read !== undefined) this.set(read());
      },
    });
    new client.Gauge({
      name: 'ledger_journal_lag',
      help: 'Journal entries applied in memory but not yet durable',
      registers: [this.registry],
      collect() {
        const read = sources().journalLag;
        if (read !== undefined) this.set(read());
      },
    });
  }
}

interface ClusterMetricSet {
  forwarded: client.Counter;
  held: client.Counter;
  moveSeconds: client.Histogram;
}

const MOVE_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

function clusterMetrics(registers: client.Registry[]): ClusterMetricSet {
  return {
    forwarded: new client.Counter({
      name: 'ledger_forwarded_requests_total',
      help: 'Commands forwarded to the pod owning their shard',
      registers,
    }),
    held: new client.Counter({
      name: 'ledger_held_requests_total',
      help: 'Commands held while their shard was acquired or handed to another pod',
      registers,
    }),
    moveSeconds: new client.Histogram({
      name: 'ledger_shard_move_seconds',
      help: 'Duration of shard moves from this pod (hold to target serving), by outcome',
      labelNames: ['outcome'],
      buckets: MOVE_BUCKETS,
      registers,
    }),
  };
}

interface RelayMetricSet {
  events: client.Counter;
  sendErrors: client.Counter;
  lagEntries: client.Gauge;
  lagSeconds: client.Gauge;
}

function relayMetrics(registers: client.Registry[]): RelayMetricSet {
  return {
    events: new client.Counter({
      name: 'ledger_relay_events_total',
      help: 'Ledger events acknowledged by Kafka (acks=-1), re-sends included',
      registers,
    }),
    sendErrors: new client.Counter({
      name: 'ledger_relay_send_errors_total',
      help: 'Failed Kafka sends of the relay (each is retried with backoff)',
      registers,
    }),
    lagEntries: new client.Gauge({
      name: 'ledger_relay_lag_entries',
      help: 'Committed journal entries not yet acknowledged by Kafka',
      registers,
    }),
    lagSeconds: new client.Gauge({
      name: 'ledger_relay_lag_seconds',
      help: 'Age of the oldest committed journal entry not yet acknowledged by Kafka',
      registers,
    }),
  };
}

function bindRoutes(
  processed: client.Counter,
  seconds: client.Histogram,
): Record<RouteLabel, Record<OutcomeLabel, RouteChildren>> {
  const out: Partial<Record<RouteLabel, Record<OutcomeLabel, RouteChildren>>> = {};
  for (const route of ROUTES) {
    const bind = (outcome: OutcomeLabel): RouteChildren => ({
      processed: processed.labels(route, outcome),
      seconds: seconds.labels(route, outcome),
    });
    out[route] = { ok: bind('ok'), rejected: bind('rejected'), failed: bind('failed') };
  }
  return out as Record<RouteLabel, Record<OutcomeLabel, RouteChildren>>;
}

function bindErrors(errors: client.Counter): Record<ErrorCode, client.Counter.Internal> {
  const out: Partial<Record<ErrorCode, client.Counter.Internal>> = {};
  for (const code of Object.keys(ERRORS) as ErrorCode[]) out[code] = errors.labels(code);
  return out as Record<ErrorCode, client.Counter.Internal>;
}
