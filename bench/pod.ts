// Starts and stops one real pod for a benchmark: `node dist/src/cli.js serve` as a child
// process on a free port with a fresh data directory (and fresh PostgreSQL databases when asked).
// Cleans up everything it created; never touches a pod or database it did not start.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { POD_NODE_FLAGS } from '../src/node-flags.js';
import { createTestDatabases, type TestDatabases } from '../test/support/pg.js';

export interface PodOptions {
  workers: number;
  shards: number;
  /** number of fresh PostgreSQL shard databases; 0 runs the embedded journal */
  pgDatabases: number;
  /** when set, the pod runs with --cpu-prof and writes its profiles here */
  cpuProfDir?: string;
}

export interface Pod {
  url: string;
  pid: number;
  /** the PostgreSQL databases the pod journals into (empty when embedded) */
  databases: string[];
  /** POST /admin/v1/tenants: a new tenant and its token */
  createTenant(id: string): Promise<string>;
  /** user + system CPU seconds of the pod process so far (all its threads), from /proc */
  cpuSeconds(): number;
  /** the same for its main thread alone (the uWebSockets.js gateway) */
  mainThreadCpuSeconds(): number;
  /** GET /metrics as text */
  metrics(): Promise<string>;
  /** SIGTERM, wait for a clean exit (SIGKILL after 20 s), then delete what was created */
  stop(): Promise<void>;
}

const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 20_000;
const TAIL_CHARS = 8192;
const CLOCK_TICKS_PER_SECOND = 100;

function cliPath(): { script: string; nodeArgs: string[] } {
  // Built, this file is dist/bench/pod.js next to dist/src/cli.js; under tsx both are .ts.
  const ts = import.meta.url.endsWith('.ts');
  const script = fileURLToPath(new URL(`../src/cli.${ts ? 'ts' : 'js'}`, import.meta.url));
  return { script, nodeArgs: ts ? ['--import', 'tsx'] : [] };
}

/** The environment of the child: ours minus any LEDGER_* setting, plus the pod's own. */
function podEnv(own: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('LEDGER_')) env[k] = v;
  return { ...env, ...own };
}

/** Resolves with the URL the pod prints once it listens; rejects if it exits first. */
function awaitBanner(child: ChildProcess, tail: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`pod did not start in ${START_TIMEOUT_MS} ms:\n${tail()}`));
    }, START_TIMEOUT_MS);
    const onExit = (code: number | null): void => {
      clearTimeout(timer);
      reject(new Error(`pod exited (${code}) before listening:\n${out}${tail()}`));
    };
    child.once('exit', onExit);
    child.stdout?.on('data', (chunk: Buffer) => {
      out = (out + chunk.toString('utf8')).slice(-TAIL_CHARS);
      const m = /ledger listening on (\S+)/.exec(out);
      if (m?.[1] === undefined) return;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(m[1]);
    });
  });
}

/** CPU seconds of a process (`/proc/<pid>/stat`) or of one thread (`/proc/<pid>/task/<tid>`). */
export function procCpuSeconds(statPath: string): number {
  try {
    // fields after the parenthesised command name: state is field 3, utime 14, stime 15
    const stat = readFileSync(statPath, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return Number.NaN; // the pod is gone; the caller shows NaN rather than a made-up figure
  }
}

async function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startPod(opts: PodOptions): Promise<Pod> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'ledger-bench-pod-'));
  const dbs: TestDatabases | null =
    opts.pgDatabases > 0 ? await createTestDatabases(opts.pgDatabases) : null;
  const adminToken = randomBytes(24).toString('hex');
  const { script, nodeArgs } = cliPath();
  const prof = opts.cpuProfDir === undefined
    ? []
    : ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`];
  const args = [...nodeArgs, ...POD_NODE_FLAGS, ...prof, script, 'serve'];
  const child = spawn(process.execPath, args, {
    env: podEnv({
      PORT: '0', HOST: '127.0.0.1', LEDGER_DATA_DIR: dataDir, LEDGER_ADMIN_TOKEN: adminToken,
      LEDGER_WORKERS: String(opts.workers), LEDGER_SHARDS: String(opts.shards),
      LOG_LEVEL: 'warn', ...(dbs === null ? {} : { LEDGER_PG_URLS: dbs.urls.join(',') }),
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let errTail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    errTail = (errTail + chunk.toString('utf8')).slice(-TAIL_CHARS);
  });
  const cleanup = async (): Promise<void> => {
    await waitExit(child);
    rmSync(dataDir, { recursive: true, force: true });
    await dbs?.drop();
  };
  let url: string;
  try {
    url = await awaitBanner(child, () => errTail);
    await waitReady(url);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const pid = child.pid ?? -1;
  return {
    url, pid, databases: dbs?.names ?? [],
    createTenant: (id) => createTenant(url, adminToken, id),
    cpuSeconds: () => procCpuSeconds(`/proc/${pid}/stat`),
    mainThreadCpuSeconds: () => procCpuSeconds(`/proc/${pid}/task/${pid}/stat`),
    metrics: async () => (await fetch(`${url}/metrics`)).text(),
    stop: cleanup,
  };
}

async function waitReady(url: string): Promise<void> {
  for (let attempt = 0; attempt < 600; attempt++) {
    const res = await fetch(`${url}/health/ready`).catch(() => null);
    if (res?.status === 200) return;
    await res?.body?.cancel();
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pod at ${url} never became ready`);
}

async function createTenant(url: string, adminToken: string, id: string): Promise<string> {
  const res = await fetch(`${url}/admin/v1/tenants`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ id }),
  });
  const body = (await res.json()) as { token?: string };
  if (res.status !== 201 || typeof body.token !== 'string') {
    throw new Error(`creating tenant ${id}: ${res.status} ${JSON.stringify(body)}`);
  }
  return body.token;
}
