// Guarantee 1 and 2 under kill -9: a pod process is killed at random points while it
// acknowledges payments; after each restart every acknowledged payment is there exactly once,
// acknowledged rejections replay as the same error, and double entry holds.

import { afterAll, describe, expect, test } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCrashRounds } from './support/crash-harness.js';

const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 20);
const dirs: string[] = [];

afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('kill -9 while acknowledging (embedded journal)', () => {
  test(`loses no acknowledged payment over ${ROUNDS} kills`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ledger-crash-'));
    dirs.push(dir);
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
