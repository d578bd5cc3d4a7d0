// Test helper: real pod processes (`node --import tsx src/cli.ts serve`) on free ports, sharing
// PostgreSQL databases and so the tenant registry (database 0). Kills only its own.

import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { built } from './built.js';
import { freePort } from './net.js';
export { freePort };

// Under tsx both this file and the CLI are .ts; built (the cluster bench), both are .js.
const TS = import.meta.url.endsWith('.ts');
const CLI = fileURLToPath(new URL(`../../src/cli.${TS ? 'ts' : 'js'}`, import.meta.url));
const NODE_ARGS = TS ? ['--import', 'tsx'] : [];
const BUILT_CLI = built('src/cli.js');
export const CLUSTER_TOKEN = 'cluster-token-0123456789abcdef';
export const ADMIN = 'admin-token-0123456789abcdef';


export interface ClusterFixture {
  root: string;
  pgUrls: string[];
  /**
   * tenant id → bearer token, valid on every pod: filled by the first pod started, through its
   * admin API (PostgreSQL shares the registry; the other pods accept the tokens).
   */
  tokens: Map<string, string>;
  /** the tenants to create */
  tenants: string[];
  shardCount: number;
  env: Record<string, string>;
}

/** A work directory; the tenants are created by the first pod started (startPodProcess). */
export async function clusterFixture(opts: {
  pgUrls: string[];
  tenants: string[];
  shardCount: number;
  env?: Record<string, string>;
}): Promise<ClusterFixture> {
  const root = mkdtempSync(path.join(os.tmpdir(), 'ledger-cluster-'));
  return { root, pgUrls: opts.pgUrls, tokens: new Map(), tenants: [...opts.tenants],
    shardCount: opts.shardCount, env: opts.env ?? {} };
}

/** Creates tenant `id` through `pod`'s admin API; its token. */
export async function createTenantVia(pod: PodProcess, id: string): Promise<string> {
  const r = await admin(pod, 'POST', '/tenants', { id });
  if (r.status !== 201 || typeof r.body.token !== 'string') {
    throw new Error(`tenant ${id} via ${pod.id}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  return r.body.token;
}

/** The fixture's tenants not created yet, through `pod`'s admin API. */
async function createMissingTenants(fx: ClusterFixture, pod: PodProcess): Promise<void> {
  for (const id of fx.tenants) {
    if (!fx.tokens.has(id)) fx.tokens.set(id, await createTenantVia(pod, id));
  }
}

/**
 * Creates a tenant on `from` and polls `to` with its token until it is accepted: the
 * propagation delay in ms and how many requests got 401 first. Throws after `ms`.
 */
export async function tokenPropagation(
  from: PodProcess,
  to: PodProcess,
  id: string,
  ms = 5000,
): Promise<{ ms: number; unauthorized: number }> {
  const token = await createTenantVia(from, id);
  const start = performance.now();
  let unauthorized = 0;
  while (performance.now() - start < ms) {
    const res = await fetch(`${to.url}/api/v1/accounts/probe`,
      { headers: { authorization: `Bearer ${token}` } });
    await res.arrayBuffer();
    // past auth: 404 account_not_found (or a retryable 503 if the shard is busy)
    if (res.status !== 401) return { ms: performance.now() - start, unauthorized };
    unauthorized++;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`a token created on ${from.id} was not accepted by ${to.id} in ${ms} ms`);
}

export class PodProcess {
  private exited: Promise<number | null>;
  constructor(
    readonly id: string,
    readonly url: string,
    readonly proc: ChildProcess,
    readonly logFile: string,
  ) {
    this.exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** kill -9: no shutdown, no lease hand-back. */
  async kill9(): Promise<void> {
    if (this.alive) this.proc.kill('SIGKILL');
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.alive) this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Starts pod `id` and resolves once /health/live answers (use waitReady for readiness). */
export async function startPodProcess(
  fx: ClusterFixture,
  id: string,
  extraEnv: Record<string, string> = {},
  opts: { built?: boolean } = {},
): Promise<PodProcess> {
  const port = await freePort();
  const dataDir = path.join(fx.root, id);
  mkdirSync(dataDir, { recursive: true });
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    PORT: String(port),
    HOST: '127.0.0.1',
    LEDGER_DATA_DIR: dataDir,
    LEDGER_SHARDS: String(fx.shardCount),
    LEDGER_WORKERS: '1',
    LEDGER_POD_ID: id,
    LEDGER_PG_URLS: fx.pgUrls.join(','),
    LEDGER_ADMIN_TOKEN: ADMIN,
    LEDGER_CLUSTER_TOKEN: CLUSTER_TOKEN,
    LEDGER_LEASE_MS: '3000',
    LOG_LEVEL: 'info',
    ...fx.env,
    ...extraEnv,
  };
  const logFile = path.join(fx.root, `${id}.log`);
  const out = createWriteStream(logFile, { flags: 'a' });
  // built: dist/, as a pod runs (tsx's loader in worker threads can fail to start a worker
  // of a pod restarted after kill -9; see crash-child.ts)
  const args = opts.built === true ? [BUILT_CLI, 'serve'] : [...NODE_ARGS, CLI, 'serve'];
  const proc = spawn(process.execPath, args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout?.pipe(out);
  proc.stderr?.pipe(out);
  const pod = new PodProcess(id, `http://127.0.0.1:${port}`, proc, logFile);
  await waitHttp(pod, '/health/live', 30_000);
  await createMissingTenants(fx, pod);
  return pod;
}

async function waitHttp(pod: PodProcess, route: string, ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!pod.alive) throw new Error(`pod ${pod.id} exited; see ${pod.logFile}`);
    const ok = await fetch(pod.url + route).then((r) => r.status === 200, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`pod ${pod.id}: ${route} not 200 after ${ms} ms; see ${pod.logFile}`);
}

export function waitReady(pod: PodProcess, ms = 30_000): Promise<void> {
  return waitHttp(pod, '/health/ready', ms);
}

export async function admin(
  pod: PodProcess,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${pod.url}/admin/v1${route}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

/** Moves `shard` to pod `to` (asked of `via`, relayed to the owner) and waits for the end. */
export async function moveShard(via: PodProcess, shard: number, to: string): Promise<void> {
  const r = await admin(via, 'POST', `/shards/${shard}/move`, { to, wait: true });
  if (r.status !== 200) {
    throw new Error(`move of shard ${shard} to ${to}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** The JSON log lines of `pod` (main thread and workers) whose `event` field is `event`. */
export function logEvents(pod: PodProcess, event: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of readFileSync(pod.logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const row = JSON.parse(line) as Record<string, unknown>;
      if (row.event === event) out.push(row);
    } catch {
      // a line cut short by the kill, or not ours
    }
  }
  return out;
}

export function removeFixture(fx: ClusterFixture, keep: boolean): void {
  if (!keep) rmSync(fx.root, { recursive: true, force: true });
}
