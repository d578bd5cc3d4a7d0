import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, MIB } from './config.js';

function problemsOf(env: Record<string, string>): readonly string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('loadConfig', () => {
  it('applies the documented defaults to an empty environment', () => {
    const c = loadConfig({});
    expect(c.port).toBe(8080);
    expect(c.host).toBe('0.0.0.0');
    expect(c.dataDir).toBe('./data');
    expect(c.shardCount).toBe(64);
    expect(c.workers).toBeGreaterThanOrEqual(1);
    expect(c.adminToken).toBeNull();
    expect(c.maxBodyBytes).toBe(4 * MIB);
    expect(c.rateLimitPerSecond).toBe(0);
    expect(c.pgUrls).toEqual([]);
    expect(c.redisUrl).toBeNull();
    expect(c.kafkaBrokers).toEqual([]);
    expect(c.logLevel).toBe('info');
    expect(c.snapshotEvery).toBe(100_000);
    expect(c.snapshotSeconds).toBe(300);
  });

  it('parses every variable', () => {
    const c = loadConfig({
      PORT: '0',
      HOST: '127.0.0.1',
      LEDGER_DATA_DIR: '/tmp/x',
      LEDGER_SHARDS: '8',
      LEDGER_WORKERS: '2',
      LEDGER_SNAPSHOT_EVERY: '0',
      LEDGER_SNAPSHOT_SECONDS: '60',
      LEDGER_ADMIN_TOKEN: 'a'.repeat(16),
      LEDGER_MAX_BODY_BYTES: '2048',
      LEDGER_RATE_LIMIT: '500',
      LEDGER_POD_ID: 'pod-a',
      LEDGER_PG_URLS: 'postgres://127.0.0.1/l0, postgresql://u:p@h:5432/l1',
      LEDGER_REDIS_URL: 'redis://127.0.0.1:6379',
      LEDGER_KAFKA_BROKERS: 'localhost:9092,10.0.0.1:9093',
      LOG_LEVEL: 'DEBUG',
    });
    expect(c).toMatchObject({
      port: 0,
      host: '127.0.0.1',
      dataDir: '/tmp/x',
      shardCount: 8,
      workers: 2,
      snapshotEvery: 0,
      snapshotSeconds: 60,
      adminToken: 'a'.repeat(16),
      maxBodyBytes: 2048,
      rateLimitPerSecond: 500,
      podId: 'pod-a',
      redisUrl: 'redis://127.0.0.1:6379',
      kafkaBrokers: ['localhost:9092', '10.0.0.1:9093'],
      logLevel: 'debug',
    });
    expect(c.pgUrls).toHaveLength(2);
  });

  it('defaults workers to at most the shard count', () => {
    expect(loadConfig({ LEDGER_SHARDS: '1' }).workers).toBe(1);
  });

  it('names each bad variable and its range, all at once', () => {
    const problems = problemsOf({
      PORT: '70000',
      LEDGER_SHARDS: '0',
      LEDGER_WORKERS: 'two',
      LEDGER_ADMIN_TOKEN: 'short',
      LEDGER_MAX_BODY_BYTES: '-1',
      LEDGER_RATE_LIMIT: '1.5',
      LEDGER_PG_URLS: 'mysql://x',
      LEDGER_REDIS_URL: 'http://x',
      LEDGER_KAFKA_BROKERS: 'nohost',
      LOG_LEVEL: 'loud',
      LEDGER_POD_ID: 'bad pod',
      LEDGER_SNAPSHOT_SECONDS: '-5',
    });
    expect(problems).toHaveLength(12);
    const expected = [
      /^PORT="70000": must be an integer from 0 to 65535$/,
      /^LEDGER_SHARDS="0": must be an integer from 1 to 4096$/,
      /^LEDGER_WORKERS="two": must be an integer from 1 to 1024$/,
      /^LEDGER_ADMIN_TOKEN: must be 16 to 512 characters/,
      /^LEDGER_MAX_BODY_BYTES="-1": must be an integer from 1024 to 268435456$/,
      /^LEDGER_RATE_LIMIT="1.5": must be an integer from 0 to 100000000$/,
      /^LEDGER_PG_URLS: "mysql:\/\/x" is not a postgres: or postgresql:/,
      /^LEDGER_REDIS_URL: "http:\/\/x" is not a redis: or rediss:/,
      /^LEDGER_KAFKA_BROKERS: "nohost" must be host:port/,
      /^LEDGER_POD_ID="bad pod": must be 1-64 chars/,
      /^LOG_LEVEL="loud": must be one of fatal, error/,
      /^LEDGER_SNAPSHOT_SECONDS="-5": must be an integer from 0 to 86400$/,
    ];
    for (const re of expected) expect(problems.some((p) => re.test(p)), re.source).toBe(true);
  });

  it('rejects more workers than shards', () => {
    expect(problemsOf({ LEDGER_SHARDS: '2', LEDGER_WORKERS: '3' })).toEqual([
      'LEDGER_WORKERS=3: must be at most LEDGER_SHARDS (2)',
    ]);
  });

  it('never echoes database passwords in a problem', () => {
    const problems = problemsOf({ LEDGER_PG_URLS: 'mysql://user:secret@host/db' });
    expect(problems.join('\n')).not.toContain('secret');
  });

  it('treats blank values as unset', () => {
    expect(loadConfig({ PORT: '  ', LEDGER_ADMIN_TOKEN: '' }).port).toBe(8080);
  });
});
