// Guarantee 1 and 2 under kill -9: a pod process is killed at random points while it
// acknowledges payments; after each restart every acknowledged payment is there exactly once,
// acknowledged rejections replay as the same error, and double entry holds.

import { afterAll, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCrashRounds } from './support/crash-harness.js';
import { createTestDatabases, type TestDatabases } from './support/pg.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const dirs: string[] = [];
const databases: TestDatabases[] = [];

let failed = false;

afterAll(async () => {
  // A failing run's work dir (journals, attempts, report) is kept for the post-mortem.
  if (failed) process.stdout.write(`crash test work dirs kept: ${dirs.join(' ')}\n`);
  else for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const db of databases) await db.drop();
});

function workDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-crash-'));
  dirs.push(dir);
  return dir;
}

/** Each journal the crash test runs against: how to make its storage config in a work dir. */
const JOURNALS: Array<{ name: string; storage: (dir: string) => Promise<unknown> }> = [
  {
    name: 'embedded journal',
    storage: async (dir) => ({ kind: 'file', dataDir: path.join(dir, 'data') }),
  },
  {
    name: 'PostgreSQL journal, two shard databases',
    storage: async (dir) => {
      const db = await createTestDatabases(2);
      databases.push(db);
      return { kind: 'pg', urls: db.urls, podId: 'crash-pod', dataDir: path.join(dir, 'snap') };
    },
  },
];

describe.each(JOURNALS)('kill -9 while acknowledging ($name)', ({ storage }) => {
  test(`loses no acknowledged payment over ${ROUNDS} kills`, async () => {
    const dir = workDir();
    const report = await runCrashRounds({
      rounds: ROUNDS,
      storage: await storage(dir),
      workDir: dir,
      seed: Number(process.env.CRASH_SEED ?? Date.now() % 100000),
    });
    writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report));
    failed ||= report.problems.length > 0;
    expect(report.problems).toEqual([]);
    expect(report.kills).toBe(ROUNDS);
    expect(report.acked).toBeGreaterThan(ROUNDS * 50);
  }, 600_000);
});
