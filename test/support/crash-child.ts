// A pod stand-in for the crash tests: runs the real actor host on a journal and either drives
// payments (printing every attempt before it is sent and every ack after it is durable) or
// verifies what survived. Killed with SIGKILL by the parent; never cleans up after itself.
// Attempts go to a file with a synchronous write before they are sent: stdout to a pipe is
// asynchronous on POSIX, so lines still queued there die with the process while the payments
// they announce may already be durable.

import { argv, stdout } from 'node:process';
import { openSync, readFileSync, writeSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { startActorHost, type ActorHost } from '../../shards/actor-host.js';
import type { Command, EntriesPage, Outcome, TransferCmd } from '../../protocol/types.js';
import { openEpochFor, type StorageConfig } from '../../src/storage.js';
import { built } from './built.js';

export const TENANTS = ['crash-a', 'crash-b', 'crash-c'];
export const USERS = 8;

interface Args {
  mode: 'load' | 'verify';
  run: number;
  storage: unknown;
  attemptsFile: string;
}

/**
 * The workers run the built code, as a pod's do (the harness checks dist/ is not older than the
 * sources). Loaded from src/ through tsx, a worker thread of this kill loop failed to start about
 * once in ten (ERR_UNKNOWN_FILE_EXTENSION for shard-worker.ts: tsx's loader not registered in
 * the thread, a known tsx-in-workers weakness on Node 20), which says nothing about the ledger.
 */
const WORKER = pathToFileURL(built('src/shard-worker.js'));

function parseArgs(): Args {
  const [mode, run, storage, attemptsFile] = argv.slice(2);
  if (mode !== 'load' && mode !== 'verify') throw new Error(`bad mode ${mode}`);
  return {
    mode, run: Number(run), storage: JSON.parse(storage ?? '{}'), attemptsFile: attemptsFile ?? '',
  };
}

function send(host: ActorHost, tenant: string, cmd: Command): Promise<Outcome> {
  return new Promise((resolve) => host.submit(tenant, cmd, resolve));
}

function line(obj: unknown): void {
  stdout.write(JSON.stringify(obj, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)) + '\n');
}

export function transferCmd(id: string, from: string, to: string, amount: bigint): TransferCmd {
  return {
    op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'EUR', description: null, paymentTypeId: null, pending: false,
    timeoutSeconds: null,
  };
}

async function setupAccounts(host: ActorHost): Promise<void> {
  for (const tenant of TENANTS) {
    const accounts = ['fund', ...Array.from({ length: USERS }, (_, i) => `u${i}`)];
    await Promise.all(accounts.map((id) => send(host, tenant, {
      op: 'createAccount', id, currencyCode: 'EUR', allowNegative: id === 'fund', metadata: '{}',
    })));
    await Promise.all(Array.from({ length: USERS }, (_, i) =>
      send(host, tenant, transferCmd(`seed-${i}`, 'fund', `u${i}`, 5000n))));
  }
}

/** Deterministic pseudo-random numbers so a failing run can be replayed from its number. */
function rng(seed: number): () => number {
  let x = seed * 2654435761 + 1;
  return () => {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    return (x >>> 0) / 4294967296;
  };
}

async function load(host: ActorHost, run: number, attemptsFile: string): Promise<void> {
  await setupAccounts(host);
  line({ ready: true });
  const rand = rng(run + 1);
  const fd = openSync(attemptsFile, 'a');
  for (let round = 0; ; round++) {
    const batch: Array<{ tenant: string; cmd: TransferCmd }> = [];
    let text = '';
    for (let k = 0; k < 200; k++) {
      const tenant = TENANTS[Math.floor(rand() * TENANTS.length)] as string;
      const from = `u${Math.floor(rand() * USERS)}`;
      const to = `u${(Number(from.slice(1)) + 1 + Math.floor(rand() * (USERS - 1))) % USERS}`;
      const amount = BigInt(1 + Math.floor(rand() * 900));
      const id = `r${run}-${round}-${k}`;
      text += `${JSON.stringify({ tenant, id, from, to, amount: String(amount) })}\n`;
      batch.push({ tenant, cmd: transferCmd(id, from, to, amount) });
    }
    writeSync(fd, text);
    await Promise.all(batch.map(({ tenant, cmd }) => send(host, tenant, cmd).then((o) => {
      line({ ack: { tenant, id: cmd.id, ok: o.ok, code: o.ok ? null : o.error.code } });
    })));
  }
}

interface Attempt {
  tenant: string; id: string; from: string; to: string; amount: string;
  ack: { ok: boolean; code: string | null } | null;
}

async function inChunks<T>(items: T[], fn: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += 1000) await Promise.all(items.slice(i, i + 1000).map(fn));
}

/** Every transfer id on every user account's history, so one nobody attempted is named. */
async function listTransfers(host: ActorHost): Promise<void> {
  for (const tenant of TENANTS) {
    for (let i = 0; i < USERS; i++) {
      let after: string | null = null;
      do {
        const cmd = { op: 'listEntries', accountId: `u${i}`, limit: 1000, after } as const;
        const o = await send(host, tenant, cmd);
        if (!o.ok) throw new Error(`listEntries ${tenant}/u${i}: ${o.error.code}`);
        const page = o.value as EntriesPage;
        for (const e of page.entries) {
          if (e.kind !== 'account-open') line({ entry: { tenant, id: e.transactionId } });
        }
        after = page.next;
      } while (after !== null);
    }
  }
}

/** First what exists (before anything new is sent), then replays of what was acknowledged. */
async function verify(host: ActorHost, attemptsFile: string): Promise<void> {
  const attempts = readFileSync(attemptsFile, 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as Attempt);
  await inChunks(attempts, async (a) => {
    const found = await send(host, a.tenant, { op: 'getTransaction', id: a.id });
    line({ found: { tenant: a.tenant, id: a.id, outcome: found } });
  });
  for (const tenant of TENANTS) {
    for (const id of ['fund', ...Array.from({ length: USERS }, (_, i) => `u${i}`)]) {
      const o = await send(host, tenant, { op: 'getAccount', id });
      line({ account: { tenant, id, outcome: o } });
    }
  }
  await listTransfers(host);
  await inChunks(attempts.filter((a) => a.ack), async (a) => {
    const replay = await send(host, a.tenant, transferCmd(a.id, a.from, a.to, BigInt(a.amount)));
    line({ replay: { tenant: a.tenant, id: a.id, outcome: replay } });
  });
  line({ done: true });
}

async function main(): Promise<void> {
  const args = parseArgs();
  const host = await startActorHost({
    workerUrl: WORKER,
    storage: args.storage,
    epoch: openEpochFor(args.storage as StorageConfig),
    shardCount: 8,
    workers: 2,
    verify: true,
    snapshotEvery: 500,
  });
  if (args.mode === 'load') await load(host, args.run, args.attemptsFile);
  else await verify(host, args.attemptsFile);
  await host.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`crash-child: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
