// Multi-pod settings, read once at start beside src/config.ts (which stays the single-pod
// configuration): internal address, cluster secret, lease timing. Never read elsewhere.

import type { Config, Env } from '../config.js';
import { ConfigError } from '../config.js';

export interface ClusterConfig {
  podId: string;
  /** database 0 of this list holds the pod registry; shard s's owner row is in s % length */
  pgUrls: string[];
  shardCount: number;
  /** where other pods reach this one (LEDGER_ADVERTISE_URL, default http://127.0.0.1:PORT) */
  advertiseUrl: string | null;
  /** shared secret of the internal API (LEDGER_CLUSTER_TOKEN); null: no forwarding */
  token: string | null;
  /** a pod that has not renewed for this long loses its shards (LEDGER_LEASE_MS, 5000) */
  leaseMs: number;
  /** renewal and directory poll period: leaseMs / 5 */
  heartbeatMs: number;
  /** snapshots are visible to other pods (Redis): save one when handing a shard over */
  sharedSnapshots: boolean;
}

const TOKEN_MIN_CHARS = 16;
const LEASE_MS_MIN = 1000;
const LEASE_MS_MAX = 600_000;

function readLease(env: Env, problems: string[]): number {
  const raw = env.LEDGER_LEASE_MS?.trim();
  if (raw === undefined || raw === '') return 5000;
  const n = /^\d{1,7}$/.test(raw) ? Number(raw) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < LEASE_MS_MIN || n > LEASE_MS_MAX) {
    problems.push(`LEDGER_LEASE_MS=${JSON.stringify(raw)}: must be an integer from ` +
      `${LEASE_MS_MIN} to ${LEASE_MS_MAX}`);
    return 5000;
  }
  return n;
}

function readAdvertise(env: Env, problems: string[]): string | null {
  const raw = env.LEDGER_ADVERTISE_URL?.trim();
  if (raw === undefined || raw === '') return null;
  let protocol = '';
  try {
    protocol = new URL(raw).protocol;
  } catch {
    protocol = '';
  }
  if (protocol !== 'http:') {
    problems.push(`LEDGER_ADVERTISE_URL=${JSON.stringify(raw)}: must be an http:// URL`);
    return null;
  }
  return raw.replace(/\/+$/, '');
}

function readToken(env: Env, problems: string[]): string | null {
  const raw = env.LEDGER_CLUSTER_TOKEN?.trim();
  if (raw === undefined || raw === '') return null;
  if (raw.length < TOKEN_MIN_CHARS || /\s/.test(raw)) {
    problems.push(`LEDGER_CLUSTER_TOKEN: must be at least ${TOKEN_MIN_CHARS} characters ` +
      'without whitespace, or unset');
    return null;
  }
  return raw;
}

/**
 * The cluster settings, or null in embedded mode (no PostgreSQL: one pod owns every shard).
 * Throws one ConfigError listing every bad value.
 */
export function loadClusterConfig(config: Config, env: Env = process.env): ClusterConfig | null {
  if (config.pgUrls.length === 0) return null;
  const problems: string[] = [];
  const leaseMs = readLease(env, problems);
  const cluster: ClusterConfig = {
    podId: config.podId,
    pgUrls: config.pgUrls,
    shardCount: config.shardCount,
    advertiseUrl: readAdvertise(env, problems),
    token: readToken(env, problems),
    leaseMs,
    heartbeatMs: Math.max(200, Math.floor(leaseMs / 5)),
    sharedSnapshots: config.redisUrl !== null,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return cluster;
}
