// Process configuration from the environment, validated once at start: every bad value gets
// one message naming the variable and its allowed range. Never read process.env elsewhere.

import os from 'node:os';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Config {
  /** TCP port; 0 asks the OS for a free one */
  port: number;
  host: string;
  dataDir: string;
  /** logical shard count, fixed when the data directory is created */
  shardCount: number;
  /** worker threads hosting shard actors */
  workers: number;
  /** a shard is snapshotted after this many new journal entries (0: never by count) */
  snapshotEvery: number;
  /** ... or when this many seconds passed since its last snapshot and it has new entries */
  snapshotSeconds: number;
  /** enables the admin API when set */
  adminToken: string | null;
  maxBodyBytes: number;
  /**
   * Per-tenant requests per second (burst: one second's worth). 0 turns rate limiting
   * off, the default: the shard queues already bound a pod's load (503 `overloaded`), and
   * a limit that suits one deployment would throttle another's benchmark.
   */
  rateLimitPerSecond: number;
  /** this pod's id, reported as shard owner by the admin API */
  podId: string;
  pgUrls: string[];
  redisUrl: string | null;
  kafkaBrokers: string[];
  logLevel: LogLevel;
}

export type Env = Readonly<Record<string, string | undefined>>;

export class ConfigError extends Error {
  readonly code = 'invalid_config';
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

export const MIB = 1024 * 1024;
export const SHARDS_MAX = 4096;
export const WORKERS_MAX = 1024;
export const BODY_BYTES_MIN = 1024;
export const BODY_BYTES_MAX = 256 * MIB;
export const RATE_LIMIT_MAX = 100_000_000;
export const ADMIN_TOKEN_MIN_CHARS = 16;
const ADMIN_TOKEN_MAX_CHARS = 512;
const POD_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

/** Reads one variable at a time, collecting every problem instead of stopping at the first. */
class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  raw(name: string): string | undefined {
    const value = this.env[name];
    if (value === undefined) return undefined;
    const trimmed = value.trim();
    return trimmed === '' ? undefined : trimmed;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      const shown = JSON.stringify(value);
      this.problems.push(`${name}=${shown}: must be an integer from ${min} to ${max}`);
      return fallback;
    }
    return n;
  }

  text(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  fail(message: string): void {
    this.problems.push(message);
  }
}

function readAdminToken(r: EnvReader): string | null {
  const token = r.raw('LEDGER_ADMIN_TOKEN');
  if (token === undefined) return null;
  const ok = token.length >= ADMIN_TOKEN_MIN_CHARS && token.length <= ADMIN_TOKEN_MAX_CHARS;
  if (!ok || /\s/.test(token)) {
    r.fail(
      `LEDGER_ADMIN_TOKEN: must be ${ADMIN_TOKEN_MIN_CHARS} to ${ADMIN_TOKEN_MAX_CHARS} ` +
        `characters without whitespace (got ${token.length} characters), or unset`,
    );
    return null;
  }
  return token;
}

function splitList(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value.split(',').map((s) => s.trim()).filter((s) => s !== '');
}

function readUrls(r: EnvReader, name: string, protocols: readonly string[]): string[] {
  const urls = splitList(r.raw(name));
  for (const url of urls) {
    let protocol = '';
    try {
      protocol = new URL(url).protocol;
    } catch {
      protocol = '';
    }
    if (!protocols.includes(protocol)) {
      const shown = url.replace(/\/\/[^@/]*@/, '//***@');
      r.fail(`${name}: ${JSON.stringify(shown)} is not a ${protocols.join(' or ')}//... URL`);
    }
  }
  return urls;
}

function readRedisUrl(r: EnvReader): string | null {
  const urls = readUrls(r, 'LEDGER_REDIS_URL', ['redis:', 'rediss:']);
  if (urls.length > 1) r.fail('LEDGER_REDIS_URL: must be one URL, not a list');
  return urls[0] ?? null;
}

function readBrokers(r: EnvReader): string[] {
  const brokers = splitList(r.raw('LEDGER_KAFKA_BROKERS'));
  for (const broker of brokers) {
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(broker);
    const port = m?.[2] === undefined ? 0 : Number(m[2]);
    if (port < 1 || port > 65535) {
      r.fail(
        `LEDGER_KAFKA_BROKERS: ${JSON.stringify(broker)} must be host:port ` +
          '(port 1 to 65535), comma-separated',
      );
    }
  }
  return brokers;
}

function readLogLevel(r: EnvReader): LogLevel {
  const value = r.text('LOG_LEVEL', 'info').toLowerCase();
  const level = LOG_LEVELS.find((l) => l === value);
  if (level === undefined) {
    r.fail(`LOG_LEVEL=${JSON.stringify(value)}: must be one of ${LOG_LEVELS.join(', ')}`);
    return 'info';
  }
  return level;
}

function readPodId(r: EnvReader): string {
  const fallback = os.hostname().replace(/[^A-Za-z0-9._:-]/g, '-').slice(0, 64) || 'pod-0';
  const podId = r.text('LEDGER_POD_ID', fallback);
  if (!POD_ID_RE.test(podId)) {
    r.fail(`LEDGER_POD_ID=${JSON.stringify(podId)}: must be 1-64 chars of [A-Za-z0-9._:-]`);
    return fallback;
  }
  return podId;
}

function readWorkers(r: EnvReader, shardCount: number): number {
  const cores = Math.max(1, Math.min(os.availableParallelism(), WORKERS_MAX));
  const workers = r.int('LEDGER_WORKERS', Math.min(cores, shardCount), 1, WORKERS_MAX);
  if (workers > shardCount) {
    r.fail(`LEDGER_WORKERS=${workers}: must be at most LEDGER_SHARDS (${shardCount})`);
  }
  return workers;
}

/** Parses the whole environment; throws one ConfigError listing every bad value. */
export function loadConfig(env: Env = process.env): Config {
  const r = new EnvReader(env);
  const shardCount = r.int('LEDGER_SHARDS', 64, 1, SHARDS_MAX);
  const config: Config = {
    port: r.int('PORT', 8080, 0, 65535),
    host: r.text('HOST', '0.0.0.0'),
    dataDir: r.text('LEDGER_DATA_DIR', './data'),
    shardCount,
    workers: readWorkers(r, shardCount),
    snapshotEvery: r.int('LEDGER_SNAPSHOT_EVERY', 100_000, 0, 1_000_000_000),
    snapshotSeconds: r.int('LEDGER_SNAPSHOT_SECONDS', 300, 0, 86_400),
    adminToken: readAdminToken(r),
    maxBodyBytes: r.int('LEDGER_MAX_BODY_BYTES', 4 * MIB, BODY_BYTES_MIN, BODY_BYTES_MAX),
    rateLimitPerSecond: r.int('LEDGER_RATE_LIMIT', 0, 0, RATE_LIMIT_MAX),
    podId: readPodId(r),
    pgUrls: readUrls(r, 'LEDGER_PG_URLS', ['postgres:', 'postgresql:']),
    redisUrl: readRedisUrl(r),
    kafkaBrokers: readBrokers(r),
    logLevel: readLogLevel(r),
  };
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return config;
}

/** Defaults for tests and embedding: loadConfig over an empty environment plus overrides. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), ...overrides };
}
