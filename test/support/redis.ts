// Test helper for real Redis: the shared server on 127.0.0.1:6379 (started if down, never
// stopped), one random key prefix per test whose keys alone are removed afterwards, and private
// redis-server processes on free ports for outage tests (paused, resumed or killed by pid).

import { execSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { freePort, reachable } from './net.js';
export { freePort };

export const SHARED_REDIS_URL = process.env.LEDGER_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';


async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (await reachable(port)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`redis-server did not come up on 127.0.0.1:${port}`);
}

/** The shared server on 6379: started (daemonized, no persistence) only if it is down. */
export async function ensureSharedRedis(): Promise<void> {
  if (await reachable(6379)) return;
  execSync(
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" ' +
      '--appendonly no --dir /tmp --logfile /tmp/ledger-test-redis.log',
    { stdio: 'inherit' },
  );
  await waitForPort(6379);
}

/** A key prefix no other test (or process) uses: `ledger-test:<pid>:<random>:`. */
export function testKeyPrefix(): string {
  return `ledger-test:${process.pid}:${randomBytes(6).toString('hex')}:`;
}

/** Removes every key under `prefix` (SCAN, never KEYS or FLUSH*). Prefix must be ours. */
export async function deleteKeys(redis: Redis, prefix: string): Promise<number> {
  if (!/^ledger-test:[0-9]+:[0-9a-f]+:$/.test(prefix)) {
    throw new Error(`refusing to delete keys under a prefix this helper did not make: ${prefix}`);
  }
  let cursor = '0';
  let removed = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) removed += await redis.unlink(...keys);
  } while (cursor !== '0');
  return removed;
}

/** One isolated namespace on the shared server; call cleanup() in afterEach/afterAll. */
export async function redisNamespace(): Promise<{
  url: string; prefix: string; client: Redis; cleanup: () => Promise<void>;
}> {
  await ensureSharedRedis();
  const prefix = testKeyPrefix();
  const client = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
  return {
    url: SHARED_REDIS_URL, prefix, client,
    cleanup: async () => {
      await deleteKeys(client, prefix);
      await client.quit();
    },
  };
}

export interface PrivateRedis {
  port: number;
  url: string;
  pid: number;
  /** SIGSTOP: the socket stays open but nothing answers (a hung server) */
  pause(): void;
  /** SIGCONT */
  resume(): void;
  /** SIGKILL and wait for the exit: connections are refused from now on */
  kill(): Promise<void>;
}

/** A throwaway redis-server in the foreground of a child process we own. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind',
    '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', '/tmp'], { stdio: 'ignore' });
  const pid = child.pid;
  if (pid === undefined) throw new Error('could not start redis-server');
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitForPort(port);
  let alive = true;
  return {
    port, pid, url: `redis://127.0.0.1:${port}`,
    pause: () => { if (alive) process.kill(pid, 'SIGSTOP'); },
    resume: () => { if (alive) process.kill(pid, 'SIGCONT'); },
    kill: async () => {
      if (!alive) return;
      alive = false;
      process.kill(pid, 'SIGKILL');
      await exited;
    },
  };
}
