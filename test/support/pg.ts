// Test helper: fresh, randomly named databases on the local PostgreSQL (127.0.0.1:5432, trust
// auth), started if it is down. Drops only the databases it created, never anything else.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import pg from 'pg';

export const PG_HOST = '127.0.0.1';
export const PG_PORT = Number(process.env.LEDGER_TEST_PG_PORT ?? 5432);
export const PG_USER = process.env.LEDGER_TEST_PG_USER ?? 'postgres';

export function pgUrl(database: string): string {
  return `postgres://${PG_USER}@${PG_HOST}:${PG_PORT}/${database}`;
}

/** The cluster's version directory under /etc/postgresql (Debian layout), e.g. '15'. */
export function pgClusterVersion(): string {
  const versions = existsSync('/etc/postgresql') ? readdirSync('/etc/postgresql') : [];
  const version = versions[0];
  if (version === undefined) throw new Error('PostgreSQL is not installed (no /etc/postgresql)');
  return version;
}

/** pg_ctlcluster start|stop for the local cluster ('stop' uses -m immediate: a crash). */
export function pgCluster(action: 'start' | 'stop'): void {
  const args = ['--skip-systemctl-redirect', pgClusterVersion(), 'main', action];
  if (action === 'stop') args.push('-m', 'immediate');
  execFileSync('pg_ctlcluster', args, { stdio: 'pipe' });
}

async function adminClient(): Promise<pg.Client> {
  const client = new pg.Client({
    connectionString: pgUrl('postgres'),
    connectionTimeoutMillis: 3000,
  });
  await client.connect();
  return client;
}

/** Resolves once the server accepts connections, starting it first if it is down. */
export async function ensurePostgres(): Promise<void> {
  let started = false;
  for (let attempt = 0; attempt < 60; attempt++) {
    try {
      const client = await adminClient();
      await client.end();
      return;
    } catch (err) {
      if (!started) {
        started = true;
        try {
          pgCluster('start');
        } catch {
          // already running or starting: the next attempt tells
        }
      }
      if (attempt === 59) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** One statement on the maintenance database (CREATE / DROP DATABASE ... for tests). */
export async function adminQuery(sql: string): Promise<void> {
  const client = await adminClient();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export interface TestDatabases {
  names: string[];
  urls: string[];
  /** terminates their connections and drops them */
  drop(): Promise<void>;
}

/** Creates `count` empty databases named ledger_test_<random>_<i>. */
export async function createTestDatabases(count: number): Promise<TestDatabases> {
  await ensurePostgres();
  const tag = randomBytes(6).toString('hex');
  const names = Array.from({ length: count }, (_, i) => `ledger_test_${tag}_${i}`);
  const client = await adminClient();
  try {
    for (const name of names) await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return { names, urls: names.map(pgUrl), drop: () => dropDatabases(names) };
}

export async function dropDatabases(names: readonly string[]): Promise<void> {
  await ensurePostgres();
  const client = await adminClient();
  try {
    for (const name of names) {
      if (!/^ledger_test_[0-9a-f]+_\d+$/.test(name)) throw new Error(`refusing to drop ${name}`);
      await client.query(
        'SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1',
        [name],
      );
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  } finally {
    await client.end();
  }
}
