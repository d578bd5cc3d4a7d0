// Wires the Kafka relay into a process: configuration, logger and metrics in, a handle to stop
// it out. Starting never waits for Kafka or PostgreSQL, so the relay can never delay a pod.

import type { Logger } from 'pino';
import { KafkaRelay, type RelayOptions, type RelayStats } from '../persistence/kafka-relay.js';
import type { Config } from './config.js';
import type { Metrics } from './metrics.js';

export interface RelayHandle {
  stats(): RelayStats;
  /** Stops the relay; idempotent. Unacknowledged events are re-sent by the next relay. */
  close(): Promise<void>;
}

/** Options the environment does not carry (tests, benchmarks, a msgpack deployment). */
export type RelayOverrides = Partial<Omit<RelayOptions, 'brokers' | 'pgUrls'>>;

/** Whether this configuration runs a relay: Kafka brokers and PostgreSQL journals are set. */
export function relayEnabled(config: Pick<Config, 'kafkaBrokers' | 'pgUrls'>): boolean {
  return config.kafkaBrokers.length > 0 && config.pgUrls.length > 0;
}

/**
 * Starts relaying every shard database of LEDGER_PG_URLS to LEDGER_KAFKA_BROKERS. Every pod may
 * start one: per database one relay holds the lock and the others stand by (relay-cursor.ts).
 */
export function startRelay(
  config: Pick<Config, 'kafkaBrokers' | 'pgUrls' | 'podId'>,
  log: Logger,
  metrics?: Metrics,
  overrides: RelayOverrides = {},
): RelayHandle {
  const relay = new KafkaRelay({
    clientId: `ledger-${config.podId}`,
    logger: log.child({ component: 'relay' }),
    observer: metrics === undefined ? undefined : {
      produced: (events) => metrics.relayProduced(events),
      sendError: () => metrics.relaySendError(),
      lag: (entries, seconds) => metrics.relayLag(entries, seconds),
    },
    ...overrides,
    brokers: config.kafkaBrokers,
    pgUrls: config.pgUrls,
  });
  relay.start();
  let closing: Promise<void> | null = null;
  return {
    stats: () => relay.stats(),
    close: () => (closing ??= relay.close()),
  };
}
