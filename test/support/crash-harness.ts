// Drives crash-child.ts: starts it, kills it with SIGKILL at a random moment while it is
// acknowledging payments, then verifies in a fresh process what survived. Shared by the
// embedded and PostgreSQL crash tests. Prints the seed so a failing run can be replayed.

import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { assertBuilt } from './built.js';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const TENANTS = ['crash-a', 'crash-b', 'crash-c'];
const USERS = 8;
const SEED_CREDIT = 5000n;
const RETRYABLE = new Set([
  'storage_unavailable', 'shard_unavailable', 'overloaded', 'shutting_down',
]);

interface Attempt {
  tenant: string; id: string; from: string; to: string; amount: string;
  ack: { ok: boolean; code: string | null } | null;
}

type Line = Record<string, unknown>;

export interface CrashReport {
  seed: number;
  kills: number;
  attempts: number;
  acked: number;
  problems: string[];
}

function runChild(args: string[], onLine: (l: Line) => void): {
  kill: () => void; exited: Promise<number | null>; stderr: () => string;
} {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const rl = createInterface({ input: proc.stdout });
  rl.on('line', (text) => {
    try {
      onLine(JSON.parse(text) as Line);
    } catch {
      err += `unparsable line: ${text}\n`;
    }
  });
  const exited = new Promise<number | null>((resolve) => {
    proc.on('close', (code) => resolve(code));
  });
  return { kill: () => proc.kill('SIGKILL'), exited, stderr: () => err };
}

function rng(seed: number): () => number {
  let x = seed || 1;
  return () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  };
}

/** Attempts the load child wrote (synchronously, before sending them) to its file. */
function readAttempts(file: string): Array<Omit<Attempt, 'ack'>> {
  if (!existsSync(file)) return [];
  const out: Array<Omit<Attempt, 'ack'>> = [];
  for (const text of readFileSync(file, 'utf8').split('\n')) {
    // Only the last line can be torn, and only if the kill came mid-write: it was not sent.
    if (text.endsWith('}')) out.push(JSON.parse(text) as Omit<Attempt, 'ack'>);
  }
  return out;
}

async function loadAndKill(
  round: number, opts: { storage: unknown; workDir: string }, delayMs: number,
  attempts: Map<string, Attempt>,
): Promise<void> {
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((r) => (ready = r));
  const file = path.join(opts.workDir, `attempts-${round}.jsonl`);
  const acks: Array<{ tenant: string; id: string; ok: boolean; code: string | null }> = [];
  const child = runChild(['load', String(round), JSON.stringify(opts.storage), file], (l) => {
    if (l.ready) ready();
    if (l.ack) acks.push(l.ack as (typeof acks)[number]);
  });
  const early = child.exited.then((code) => {
    throw new Error(`load child exited early (${code}): ${child.stderr()}`);
  });
  await Promise.race([isReady, early]);
  await new Promise((r) => setTimeout(r, delayMs));
  child.kill();
  await child.exited;
  for (const a of readAttempts(file)) attempts.set(`${a.tenant}/${a.id}`, { ...a, ack: null });
  for (const k of acks) {
    const at = attempts.get(`${k.tenant}/${k.id}`);
    if (!at) throw new Error(`ack for ${k.tenant}/${k.id}, which was never attempted`);
    // A retryable refusal is not an acknowledgement: nothing was promised.
    if (k.ok || !RETRYABLE.has(k.code ?? '')) at.ack = { ok: k.ok, code: k.code };
  }
}

export async function runCrashRounds(opts: {
  rounds: number; storage: unknown; workDir: string; seed: number;
}): Promise<CrashReport> {
  assertBuilt(); // the crash child's workers run dist/ (see crash-child.ts)
  const rand = rng(opts.seed);
  const attempts = new Map<string, Attempt>();
  process.stdout.write(`crash test seed ${opts.seed} (replay with CRASH_SEED=${opts.seed})\n`);
  for (let round = 0; round < opts.rounds; round++) {
    await loadAndKill(round, opts, 30 + Math.floor(rand() * 600), attempts);
  }
  const problems = await verify(opts, [...attempts.values()]);
  const acked = [...attempts.values()].filter((a) => a.ack).length;
  return { seed: opts.seed, kills: opts.rounds, attempts: attempts.size, acked, problems };
}

async function verify(
  opts: { storage: unknown; workDir: string }, attempts: Attempt[],
): Promise<string[]> {
  const file = path.join(opts.workDir, 'attempts.jsonl');
  writeFileSync(file, attempts.map((a) => JSON.stringify(a)).join('\n') + '\n');
  const lines: Line[] = [];
  const child = runChild(['verify', '0', JSON.stringify(opts.storage), file], (l) => lines.push(l));
  const code = await child.exited;
  writeFileSync(path.join(opts.workDir, 'verify.jsonl'),
    lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  if (code !== 0) return [`verify child exited ${code}: ${child.stderr()}`];
  return check(attempts, lines);
}

interface OutcomeJson { ok: boolean; created?: boolean; value?: Record<string, unknown>;
  error?: { code: string } }

function check(attempts: Attempt[], lines: Line[]): string[] {
  const problems: string[] = [];
  const byKey = new Map(attempts.map((a) => [`${a.tenant}/${a.id}`, a]));
  const expected = new Map<string, bigint>();
  const add = (key: string, v: bigint): void => {
    expected.set(key, (expected.get(key) ?? 0n) + v);
  };
  for (const t of TENANTS) {
    add(`${t}/fund`, -SEED_CREDIT * BigInt(USERS));
    for (let i = 0; i < USERS; i++) add(`${t}/u${i}`, SEED_CREDIT);
  }
  for (const l of lines) {
    const f = l.found as { tenant: string; id: string; outcome: OutcomeJson } | undefined;
    if (!f) continue;
    const a = byKey.get(`${f.tenant}/${f.id}`);
    if (!a) continue;
    if (a.ack?.ok && !f.outcome.ok) problems.push(`acknowledged ${f.tenant}/${f.id} is missing`);
    if (!f.outcome.ok) continue;
    const v = f.outcome.value ?? {};
    if (v.amountMinor !== a.amount || v.fromAccountId !== a.from || v.toAccountId !== a.to) {
      problems.push(`${f.tenant}/${f.id} differs: ${JSON.stringify(v)}`);
    }
    add(`${a.tenant}/${a.from}`, -BigInt(a.amount));
    add(`${a.tenant}/${a.to}`, BigInt(a.amount));
  }
  checkEntries(lines, byKey, problems);
  checkBalances(lines, expected, problems);
  checkReplays(lines, byKey, problems);
  if (!lines.some((l) => l.done)) problems.push('verify did not finish');
  return problems.slice(0, 50);
}

/** Every transfer on an account's history must be one that was attempted. */
function checkEntries(lines: Line[], byKey: Map<string, Attempt>, problems: string[]): void {
  for (const l of lines) {
    const e = l.entry as { tenant: string; id: string } | undefined;
    if (!e || e.id.startsWith('seed-') || byKey.has(`${e.tenant}/${e.id}`)) continue;
    problems.push(`${e.tenant}/${e.id} is in the ledger but was never attempted`);
  }
}

function checkBalances(lines: Line[], expected: Map<string, bigint>, problems: string[]): void {
  const sums = new Map<string, bigint>();
  for (const l of lines) {
    const acc = l.account as { tenant: string; id: string; outcome: OutcomeJson } | undefined;
    if (!acc) continue;
    const balance = BigInt(String(acc.outcome.value?.balanceMinor ?? 'NaN'));
    const want = expected.get(`${acc.tenant}/${acc.id}`) ?? 0n;
    if (balance !== want) {
      const key = `${acc.tenant}/${acc.id}`;
      problems.push(`${key} balance ${balance}, expected ${want} (applied twice?)`);
    }
    sums.set(acc.tenant, (sums.get(acc.tenant) ?? 0n) + balance);
  }
  for (const [tenant, sum] of sums) {
    if (sum !== 0n) problems.push(`tenant ${tenant} balances sum to ${sum}, not 0`);
  }
}

function checkReplays(lines: Line[], byKey: Map<string, Attempt>, problems: string[]): void {
  for (const l of lines) {
    const r = l.replay as { tenant: string; id: string; outcome: OutcomeJson } | undefined;
    if (!r) continue;
    const a = byKey.get(`${r.tenant}/${r.id}`);
    if (!a?.ack) continue;
    if (a.ack.ok && !(r.outcome.ok && r.outcome.created === false)) {
      problems.push(`replay of acknowledged ${r.tenant}/${r.id} gave ${JSON.stringify(r.outcome)}`);
    }
    if (!a.ack.ok && (r.outcome.ok || r.outcome.error?.code !== a.ack.code)) {
      problems.push(`replay of rejected ${r.tenant}/${r.id} gave ${JSON.stringify(r.outcome)}`);
    }
  }
}
