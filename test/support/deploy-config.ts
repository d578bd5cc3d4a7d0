// What the deploy tests compare manifests against: the variables src/config.ts and
// src/cluster/cluster-config.ts read (from their source, so a new variable is picked up without
// touching the tests) and the server's defaults.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { loadClusterConfig, type ClusterConfig } from '../../src/cluster/cluster-config.js';
import { loadConfig, type Config } from '../../src/config.js';
import { ROOT } from './deploy-files.js';

/**
 * Every environment variable name the pod reads: src/config.ts names them as string literals
 * ('LEDGER_SHARDS'), src/cluster/cluster-config.ts as properties (env.LEDGER_LEASE_MS).
 */
export function configVariables(): Set<string> {
  const sources: [string, RegExp][] = [
    ['src/config.ts', /'((?:LEDGER_[A-Z0-9_]+)|PORT|HOST|LOG_LEVEL)'/g],
    ['src/cluster/cluster-config.ts', /\benv\.(LEDGER_[A-Z0-9_]+)/g],
  ];
  const names = new Set<string>();
  for (const [file, re] of sources) {
    const source = readFileSync(path.join(ROOT, file), 'utf8');
    for (const m of source.matchAll(re)) names.add(m[1] ?? '');
  }
  return names;
}

/**
 * Variables set in manifests that the Node runtime reads, not the pod's config: NODE_OPTIONS caps
 * each isolate's heap below the container's memory limit. Nothing else is allowed.
 */
export const RUNTIME_VARIABLES = new Set(['NODE_OPTIONS']);

/** Stand-ins for the values a Secret supplies, so a manifest's env can go through loadConfig. */
export const SECRET_STAND_INS: Readonly<Record<string, string>> = {
  LEDGER_ADMIN_TOKEN: 'stand-in-admin-token-0123456789',
  LEDGER_PG_URLS: 'postgres://ledger:stand-in@pg-0:5432/ledger',
  LEDGER_REDIS_URL: 'redis://redis:6379',
  LEDGER_CLUSTER_TOKEN: 'stand-in-cluster-token-0123456789',
};

/** loadConfig over a manifest's environment: throws ConfigError naming any bad value. */
export function configOf(env: Readonly<Record<string, string>>): Config {
  return loadConfig({ ...SECRET_STAND_INS, LEDGER_POD_ID: 'ledger-0', ...env });
}

/**
 * loadClusterConfig over a manifest's environment (throws ConfigError naming any bad value);
 * the stand-in PostgreSQL URL makes it multi-pod, as every manifest here is.
 */
export function clusterConfigOf(env: Readonly<Record<string, string>>): ClusterConfig {
  const full = { ...SECRET_STAND_INS, LEDGER_POD_ID: 'ledger-0', ...env };
  const cluster = loadClusterConfig(loadConfig(full), full);
  if (cluster === null) throw new Error('no LEDGER_PG_URLS: not a multi-pod environment');
  return cluster;
}

/** The server's defaults (PORT 8080 ...), as loadConfig gives them over an empty environment. */
export function defaults(): Config {
  return loadConfig({ LEDGER_POD_ID: 'ledger-0' });
}

/** `--max-old-space-size=N` in NODE_OPTIONS, in MiB, or null. */
export function heapCapMib(nodeOptions: string | undefined): number | null {
  const m = /--max-old-space-size=(\d+)/.exec(nodeOptions ?? '');
  return m === null ? null : Number(m[1]);
}

/** Kubernetes quantities we use (2Gi, 512Mi, 4, 250m) in bytes or cores. */
export function quantity(q: unknown): number {
  const s = String(q);
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|m)?$/.exec(s);
  if (m === null) throw new Error(`unsupported quantity ${s}`);
  const n = Number(m[1]);
  const unit = m[2] ?? '';
  const scale: Record<string, number> = {
    '': 1,
    m: 0.001,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
  };
  return n * (scale[unit] ?? Number.NaN);
}
