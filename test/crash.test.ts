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

afterAll(async () => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  for (const db of databases) await db.drop();
});

function workDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ledger-crash-'));
  dirs.push(dir);
  return dir;
}

describe('kill -9 while acknowledging (embedded journal)', () => {
  test(`loses no acknowledged payment over ${ROUNDS} kills`, async () => {
    const dir = workDir();
    const report = await runCrashRounds({
      rounds: ROUNDS,
      storage: { kind: 'file', dataDir: path.join(dir, 'data') },
      workDir: dir,
      seed: Number(process.env.CRASH_SEED ?? Date.now() % 100000),
    });
    writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report));
    expect(report.problems).toEqual([]);
    expect(report.kills).toBe(ROUNDS);
    expect(report.acked).toBeGreaterThan(ROUNDS * 50);
  }, 600_000);
});

describe('kill -9 while acknowledging (PostgreSQL journal, two shard databases)', () => {
  test(`loses no acknowledged payment over ${ROUNDS} kills`, async () => {
    const db = await createTestDatabases(2);
    databases.push(db);
    const dir = workDir();
    const report = await runCrashRounds({
      rounds: ROUNDS,
      storage: { kind: 'pg', urls: db.urls, podId: 'crash-pod', dataDir: path.join(dir, 'snap') },
      workDir: dir,
      seed: Number(process.env.CRASH_SEED ?? Date.now() % 100000),
    });
    writeFileSync(path.join(dir, 'report.json'), JSON.stringify(report));
    expect(report.problems).toEqual([]);
    expect(report.kills).toBe(ROUNDS);
    expect(report.acked).toBeGreaterThan(ROUNDS * 50);
  }, 600_000);
});
