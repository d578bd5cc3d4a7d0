#!/usr/bin/env -S node --max-semi-space-size=64 --v8-pool-size=0
// The `ledger` command. `serve` (default) runs one pod and prints a demo tenant token; SIGTERM
// or SIGINT shuts it down gracefully. Never prints a token other than the fresh demo one.

import pino, { type Logger } from 'pino';
import { ConfigError, loadConfig, type Config } from './config.js';
import { runAudit } from './audit/run-audit.js';
import { loadClusterConfig, type ClusterConfig } from './cluster/cluster-config.js';
import { runShards } from './cluster/shards-cli.js';
import { startServer, type Server } from './server.js';

const USAGE = `usage: ledger [serve | audit ... | shards ...]

  serve   run one pod (default): HTTP + WebSocket API, embedded journal under
          LEDGER_DATA_DIR, a 'demo' tenant with a fresh token printed at start;
          with LEDGER_PG_URLS it joins the cluster of pods sharing those databases
  audit   replay persisted journals and prove the books balance (ledger audit --help)
  shards  list, move and rebalance shards between pods (ledger shards --help)

Configuration comes from the environment: PORT, HOST, LEDGER_DATA_DIR, LEDGER_SHARDS,
LEDGER_WORKERS, LEDGER_ADMIN_TOKEN, LEDGER_MAX_BODY_BYTES, LEDGER_RATE_LIMIT,
LEDGER_POD_ID, LEDGER_PG_URLS, LEDGER_REDIS_URL, LEDGER_KAFKA_BROKERS, LOG_LEVEL;
multi-pod: LEDGER_ADVERTISE_URL, LEDGER_CLUSTER_TOKEN, LEDGER_LEASE_MS.
`;

const DEMO_TENANT = 'demo';

/** A fresh token for the demo tenant, creating the tenant on first start. */
async function demoToken(server: Server): Promise<string> {
  if (!server.tenants.has(DEMO_TENANT)) {
    const created = await server.tenants.createTenant(DEMO_TENANT);
    if (created.ok) return created.token;
    // Pods of a new cluster start together: another one may have created it a moment ago.
    if (created.error.code !== 'tenant_exists') {
      throw new Error(`cannot create the demo tenant: ${created.error.code}`);
    }
  }
  const token = await server.tenants.issueToken(DEMO_TENANT);
  if (token === null) throw new Error('the demo tenant vanished');
  return token;
}

function banner(url: string, token: string): string {
  const body = '{"id":"demo-usd","currencyCode":"USD"}';
  return [
    '',
    `ledger listening on ${url}`,
    `demo tenant token: ${token}`,
    'try:',
    `  curl -s -X POST ${url}/api/v1/accounts -H 'Authorization: Bearer ${token}' \\`,
    `    -H 'Content-Type: application/json' -d '${body}'`,
    '',
  ].join('\n');
}

function onSignals(log: Logger, server: Server): void {
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting without waiting');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    server.close().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function serve(config: Config, cluster: ClusterConfig | null): Promise<void> {
  const log = pino({ level: config.logLevel });
  const server = await startServer(config, { logger: log, cluster });
  onSignals(log, server);
  const token = await demoToken(server);
  log.info(
    { url: server.url, port: server.port, shards: config.shardCount, workers: config.workers },
    'listening',
  );
  process.stdout.write(banner(server.url, token) + '\n');
}

function readConfig(): [Config, ClusterConfig | null] {
  try {
    const config = loadConfig();
    return [config, loadClusterConfig(config)];
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

async function audit(args: readonly string[]): Promise<void> {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0); // `ledger audit ... | head`
  });
  process.exitCode = await runAudit([...args]);
}

/** Subcommands by name; each gets the arguments after its name. */
const COMMANDS: Readonly<Record<string, (args: readonly string[]) => Promise<void>>> = {
  serve: () => serve(...readConfig()),
  audit,
  shards: async (args) => {
    process.exitCode = await runShards(args);
  },
};

async function main(argv: readonly string[]): Promise<void> {
  const [command = 'serve', ...args] = argv;
  if (command === 'help' || command === '--help' || command === '-h') {
    process.stdout.write(USAGE);
    return;
  }
  const known = Object.prototype.hasOwnProperty.call(COMMANDS, command);
  const run = known ? COMMANDS[command] : undefined;
  if (run === undefined) {
    process.stderr.write(`ledger: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    process.exit(2);
  }
  await run(args);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const shown = err instanceof Error ? (err.stack ?? err.message) : String(err);
  process.stderr.write(`ledger: ${shown}\n`);
  process.exit(1);
});
