// Starts a real pod (actor host, embedded journal, uWS gateways) on port 0 in a temp directory
// for API tests, and removes everything it created. Never points at a shared data directory.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { expect } from 'vitest';
import { LedgerHttpClient, type HttpReply } from '../protocol/client.js';
import { testConfig, type Config } from '../src/config.js';
import { startServer, type Server, type ServerOptions } from '../src/server.js';

export const ADMIN_TOKEN = 'admin-token-0123456789abcdef';

export interface Pod {
  server: Server;
  url: string;
  config: Config;
  /** a new tenant and an HTTP client holding its token */
  tenant(id: string): Promise<LedgerHttpClient & { tenantId: string }>;
  stop(): Promise<void>;
}

/** `keepData`: the data directory survives stop() (for restart tests; the caller removes it). */
export async function startPod(
  overrides: Partial<Config> = {},
  keepData = false,
  options: Omit<ServerOptions, 'logger'> = {},
): Promise<Pod> {
  const dataDir = overrides.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'ledger-api-')));
  const config = testConfig({
    port: 0,
    host: '127.0.0.1',
    dataDir,
    shardCount: 8,
    workers: 2,
    adminToken: ADMIN_TOKEN,
    podId: 'pod-test',
    logLevel: 'silent',
    ...overrides,
  });
  const server = await startServer(config, { ...options, logger: pino({ level: 'silent' }) });
  let stopped = false;
  return {
    server,
    url: server.url,
    config,
    async tenant(id) {
      const created = await server.tenants.createTenant(id);
      if (!created.ok) throw new Error(`tenant ${id}: ${created.error.code}`);
      return Object.assign(new LedgerHttpClient(server.url, created.token), { tenantId: id });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.close();
      if (!keepData) await rm(dataDir, { recursive: true, force: true });
    },
  };
}

interface ErrorBody {
  error: { code: string; message: string; retryable: boolean };
}

function isErrorBody(body: unknown): body is ErrorBody {
  return typeof body === 'object' && body !== null && 'error' in body;
}

/** Asserts an error reply: status, code, and the catalogue's shape. */
export function expectError(reply: HttpReply, status: number, code: string): ErrorBody['error'] {
  expect({ status: reply.status, body: reply.body }).toMatchObject({
    status,
    body: { error: { code } },
  });
  if (!isErrorBody(reply.body)) throw new Error('not an error body');
  expect(typeof reply.body.error.message).toBe('string');
  expect(typeof reply.body.error.retryable).toBe('boolean');
  return reply.body.error;
}

/** The body as a record (fails the test when it is not one). */
export function obj(reply: HttpReply): Record<string, unknown> {
  const body = reply.body;
  if (typeof body !== 'object' || body === null) throw new Error(`not an object: ${String(body)}`);
  return body as Record<string, unknown>;
}

/** balanceMinor of each account, for "nothing changed" checks. */
export async function balances(
  client: LedgerHttpClient,
  ids: readonly string[],
): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const id of ids) {
    const reply = await client.getAccount(id);
    expect(reply.status).toBe(200);
    const body = obj(reply);
    out[id] = [body.balanceMinor, body.pendingDebits, body.pendingCredits];
  }
  return out;
}

/** Polls `check` until it returns true or `ms` pass (for the pending-timeout sweep). */
export async function eventually(
  check: () => Promise<boolean>,
  ms: number,
  pollMs = 100,
): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, pollMs));
  }
  return check();
}
