// Test setup for the whole suite: makes sure the real local services the integration tests
// use are running (on a fresh machine too). Starts only what is down; never stops anything.
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { reachable } from './net.js';


async function waitFor(port: number, what: string): Promise<void> {
  for (let i = 0; i < 50; i++) {
    if (await reachable(port)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${what} did not come up on 127.0.0.1:${port}`);
}

async function ensurePostgres(): Promise<void> {
  if (await reachable(5432)) return;
  const versions = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  const version = versions[0];
  if (!version) throw new Error('PostgreSQL is not installed (no /etc/postgresql)');
  execFileSync('pg_ctlcluster', ['--skip-systemctl-redirect', version, 'main', 'start'], {
    stdio: 'inherit',
  });
  await waitFor(5432, 'PostgreSQL');
}

async function ensureRedis(): Promise<void> {
  if (await reachable(6379)) return;
  execSync(
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" ' +
      '--appendonly no --dir /tmp --logfile /tmp/ledger-test-redis.log',
    { stdio: 'inherit' },
  );
  await waitFor(6379, 'Redis');
}

export default async function setup(): Promise<void> {
  await ensurePostgres();
  await ensureRedis();
}
