// The tenant registry's rows in PostgreSQL (database 0 of LEDGER_PG_URLS; tables and NOTIFY
// trigger: pg-schema migration 4). Sees only SHA-256 token hashes, never a token; keeps no
// cache and no policy (the in-memory map and its refreshes live in src/tenants-pg.ts).

import pg from 'pg';
import { migrate } from './pg-schema.js';

export const TENANT_CHANNEL = 'ledger_tenants';
const RELISTEN_MS = 1000;
const HASH_BYTES = 32;

/** One committed change, as the trigger announces it (hashes in lowercase hex). */
export type TenantChange =
  | { kind: 'tenant'; tenant: string }
  | { kind: 'token'; tenant: string; hash: string }
  | { kind: 'removed'; tenant: string; hash: string };

export interface TenantRows {
  tenants: string[];
  tokens: Array<{ hash: string; tenant: string }>;
}

export interface TenantStoreOptions {
  /** shown in pg_stat_activity */
  podId: string;
  connectTimeoutMs?: number;
}

/** Parses a NOTIFY payload; null for anything this code did not write. */
export function parseTenantChange(payload: string): TenantChange | null {
  const [op, a, b, ...rest] = payload.split(' ');
  if (rest.length > 0 || a === undefined || a === '') return null;
  if (op === 't' && b === undefined) return { kind: 'tenant', tenant: a };
  if (b === undefined || b === '' || !/^[0-9a-f]{64}$/.test(a)) return null;
  if (op === '+') return { kind: 'token', tenant: b, hash: a };
  if (op === '-') return { kind: 'removed', tenant: b, hash: a };
  return null;
}

function hashBytes(hex: string): Buffer {
  const buf = Buffer.from(hex, 'hex');
  if (buf.length !== HASH_BYTES) throw new RangeError(`token hash: ${HASH_BYTES} bytes expected`);
  return buf;
}

/*
 * One statement, so one implicit transaction: the tenant row and its first token commit
 * together or not at all. The foreign key is checked at the end of the statement, when the
 * CTE's row exists. No row back: the tenant id was taken (by any pod).
 */
const CREATE_SQL = `
  WITH t AS (INSERT INTO ledger_tenant (id) VALUES ($1) ON CONFLICT (id) DO NOTHING RETURNING id)
  INSERT INTO ledger_token (token_hash, tenant_id) SELECT $2, id FROM t RETURNING tenant_id`;

/** Keeps the `$2` newest tokens of tenant `$1`, deleting the rest: the retired hashes. */
const RETIRE_SQL = `
  DELETE FROM ledger_token WHERE token_hash IN (
    SELECT token_hash FROM ledger_token WHERE tenant_id = $1
     ORDER BY created_at DESC, token_hash DESC OFFSET $2)
  RETURNING encode(token_hash, 'hex') AS hash`;

export class PgTenantStore {
  private readonly pool: pg.Pool;
  private listener: pg.Client | null = null;
  private closed = false;

  constructor(
    private readonly url: string,
    opts: TenantStoreOptions,
  ) {
    this.pool = new pg.Pool({
      connectionString: url,
      max: 2,
      application_name: `ledger-tenants:${opts.podId}`,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 3000,
      statement_timeout: 10_000,
    });
    this.pool.on('error', () => undefined); // a dropped idle connection; the next query reports
  }

  /** Brings the database to the current schema (idempotent, under the migration lock). */
  async init(): Promise<void> {
    const client = await this.pool.connect();
    try {
      await migrate(client);
    } finally {
      client.release();
    }
  }

  /** Every tenant and every live token hash. */
  async loadAll(): Promise<TenantRows> {
    const [tenants, tokens] = await Promise.all([
      this.pool.query<{ id: string }>('SELECT id FROM ledger_tenant'),
      this.pool.query<{ hash: string; tenant: string }>(
        `SELECT encode(token_hash, 'hex') AS hash, tenant_id AS tenant FROM ledger_token`),
    ]);
    return { tenants: tenants.rows.map((r) => r.id), tokens: tokens.rows };
  }

  /** Registers tenant `id` with its first token; false when the id is taken. */
  async createTenant(id: string, hash: string): Promise<boolean> {
    const res = await this.pool.query(CREATE_SQL, [id, hashBytes(hash)]);
    return (res.rowCount ?? 0) > 0;
  }

  /**
   * Adds a token to tenant `id` and retires its oldest beyond `keep`, in one transaction that
   * holds the tenant row (so two pods issuing at once cannot keep more than `keep`). The
   * retired hashes, or null when there is no such tenant.
   */
  async addToken(id: string, hash: string, keep: number): Promise<string[] | null> {
    return this.transaction(async (c) => {
      const t = await c.query('SELECT id FROM ledger_tenant WHERE id = $1 FOR UPDATE', [id]);
      if ((t.rowCount ?? 0) === 0) return null;
      await c.query('INSERT INTO ledger_token (token_hash, tenant_id) VALUES ($1, $2)',
        [hashBytes(hash), id]);
      const retired = await c.query<{ hash: string }>(RETIRE_SQL, [id, keep]);
      return retired.rows.map((r) => r.hash);
    });
  }

  /**
   * Imports a tenant of an embedded-mode tenants.json with its token hashes; false (nothing
   * written) when PostgreSQL already has a tenant of that id.
   */
  async importTenant(id: string, hashes: readonly string[]): Promise<boolean> {
    return this.transaction(async (c) => {
      const t = await c.query(
        'INSERT INTO ledger_tenant (id) VALUES ($1) ON CONFLICT (id) DO NOTHING', [id]);
      if ((t.rowCount ?? 0) === 0) return false;
      for (const h of hashes) {
        await c.query(`INSERT INTO ledger_token (token_hash, tenant_id) VALUES ($1, $2)
          ON CONFLICT (token_hash) DO NOTHING`, [hashBytes(h), id]);
      }
      return true;
    });
  }

  /**
   * Calls `onChange` for every committed change and `onListening` each time LISTEN is
   * (re)established (changes during a gap were missed: the caller reloads). A lost connection
   * is re-opened after a second. Resolves once the first LISTEN is in place.
   */
  async listen(
    onChange: (change: TenantChange) => void,
    onListening: () => void,
    onLost: (err: unknown) => void,
  ): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url, keepAlive: true });
    this.listener = client;
    let lost = false;
    const retry = (err?: unknown): void => {
      if (lost || this.listener !== client || this.closed) return;
      lost = true;
      this.listener = null;
      onLost(err);
      client.end().catch(() => undefined);
      const again = (): void => {
        this.listen(onChange, onListening, onLost).catch(() => undefined);
      };
      setTimeout(again, RELISTEN_MS).unref();
    };
    client.on('error', retry);
    client.on('end', () => retry(new Error('listen connection ended')));
    client.on('notification', (msg) => {
      const change = msg.channel === TENANT_CHANNEL ? parseTenantChange(msg.payload ?? '') : null;
      if (change !== null) onChange(change);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${TENANT_CHANNEL}`);
    } catch (err) {
      retry(err);
      throw err;
    }
    onListening();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const l = this.listener;
    this.listener = null;
    if (l !== null) await l.end().catch(() => undefined);
    await this.pool.end();
  }

  private async transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      const out = await fn(client);
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true; // the connection is gone; the original error is what matters
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
