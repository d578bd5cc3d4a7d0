// The shard directory of multi-pod operation, in PostgreSQL: pod leases, shard owners, hand-off
// state, conditional claims and change notifications. Never decides policy (who should own
// what: src/cluster/); never claims blindly, so a restarted pod cannot steal a shard back.

import pg from 'pg';
import { migrate } from './pg-schema.js';

/*
 * Where things live (see pg-schema migration 2):
 *   shard_owner   in the shard's own database (shard % urls.length, as the journal): epoch
 *                 (the fencing token the journal trigger checks), owner, state, target.
 *   ledger_pod    in EVERY shard database: pod id, internal address, lease. A claim of a shard
 *                 whose owner stopped renewing checks that owner's lease in the same database
 *                 and bumps the epoch in the same statement, so claim and fence are atomic.
 *   Membership (the pod list with addresses) is read from database 0.
 *
 * A claim succeeds only when (a) nobody ever owned the shard, (b) this pod owns it (a restart
 * or a worker that failed closed), (c) it is being handed to this pod (state 'moving',
 * target = this pod), or (d) its owner's lease has expired. It always takes epoch + 1, which
 * fences every commit of the previous owner (the trigger locks the owner row FOR SHARE, so
 * the claim waits for commits in flight and every later one of the old epoch fails).
 */

export const SHARD_STATES = ['active', 'moving', 'recovering'] as const;
export type DirectoryState = (typeof SHARD_STATES)[number];

export interface DirectoryRow {
  shard: number;
  epoch: number;
  owner: string;
  state: DirectoryState;
  /** the pod a 'moving' shard is handed to */
  target: string | null;
}

export interface PodRow {
  podId: string;
  address: string;
  /** the lease had not expired when read (by the database's clock) */
  alive: boolean;
}

export interface ShardDirectoryOptions {
  podId: string;
  /** how long a heartbeat keeps this pod's shards its own */
  leaseMs: number;
  connectTimeoutMs?: number;
}

interface Db {
  index: number;
  url: string;
  pool: pg.Pool;
  listener: pg.Client | null;
}

interface OwnerRow {
  shard: number;
  epoch: string;
  owner: string;
  state: string;
  target: string | null;
}

const CHANNEL = 'ledger_directory';
const RELISTEN_MS = 1000;

/*
 * A state change (not a claim) need not wait for its WAL flush: the target's claim comes
 * later in the same database's WAL and commits synchronously, flushing this record with it;
 * if the server crashes before, both are lost and the move simply did not happen. Set per
 * transaction (is_local), inside the one statement, so it costs no extra round trip.
 */
const RELAXED_COMMIT = `set_config('synchronous_commit', 'off', true) IS NOT NULL`;

const CLAIM_NEW_SQL = `
  INSERT INTO shard_owner (shard, epoch, owner, state) VALUES ($1, 1, $2, 'recovering')
  ON CONFLICT (shard) DO NOTHING RETURNING epoch`;

const CLAIM_SQL = `
  UPDATE shard_owner o
     SET epoch = o.epoch + 1, owner = $2, state = 'recovering', target = NULL, updated_at = now()
   WHERE o.shard = $1
     AND (o.owner = $2
          OR (o.state = 'moving' AND o.target = $2)
          OR NOT EXISTS (SELECT 1 FROM ledger_pod p
                          WHERE p.pod_id = o.owner AND p.lease_until > now()))
  RETURNING epoch`;

const HEARTBEAT_SQL = `
  INSERT INTO ledger_pod (pod_id, address, heartbeat_at, lease_until)
  VALUES ($1, $2, now(), now() + make_interval(secs => $3::double precision / 1000))
  ON CONFLICT (pod_id) DO UPDATE
    SET address = EXCLUDED.address, heartbeat_at = now(), lease_until = EXCLUDED.lease_until`;

export class ShardDirectory {
  private readonly dbs: Db[];
  private closed = false;
  private onChange: ((shard: number) => void) | null = null;

  constructor(
    urls: readonly string[],
    private readonly opts: ShardDirectoryOptions,
  ) {
    if (urls.length === 0) throw new RangeError('ShardDirectory: at least one database URL');
    if (!Number.isSafeInteger(opts.leaseMs) || opts.leaseMs < 100) {
      throw new RangeError(`ShardDirectory: leaseMs must be an integer >= 100: ${opts.leaseMs}`);
    }
    this.dbs = urls.map((url, index) => {
      const pool = new pg.Pool({
        connectionString: url,
        max: 4,
        application_name: `ledger-directory:${opts.podId}`,
        connectionTimeoutMillis: opts.connectTimeoutMs ?? 3000,
        statement_timeout: 10_000,
      });
      pool.on('error', () => undefined); // a dropped idle connection; the next query reports
      return { index, url, pool, listener: null };
    });
  }

  databaseOf(shard: number): number {
    return shard % this.dbs.length;
  }

  /** Brings every database to the current schema (each pod may do it; it is idempotent). */
  async init(): Promise<void> {
    await Promise.all(this.dbs.map(async (db) => {
      const client = await db.pool.connect();
      try {
        await migrate(client);
      } finally {
        client.release();
      }
    }));
  }

  /**
   * Renews this pod's lease in every database; resolves only if all succeeded (a database
   * this pod cannot reach is one whose shards it cannot commit to either).
   */
  async heartbeat(address: string): Promise<void> {
    const args = [this.opts.podId, address, this.opts.leaseMs];
    await Promise.all(this.dbs.map((db) => db.pool.query(HEARTBEAT_SQL, args)));
  }

  /** Ends this pod's lease now, so other pods may claim its shards at once (shutdown). */
  async leave(): Promise<void> {
    const sql = 'UPDATE ledger_pod SET lease_until = now() WHERE pod_id = $1';
    await Promise.allSettled(this.dbs.map((db) => db.pool.query(sql, [this.opts.podId])));
  }

  /** Every pod that ever registered, with its address; `alive` by its lease. */
  async pods(): Promise<PodRow[]> {
    const db = this.dbs[0] as Db;
    const res = await db.pool.query<{ pod_id: string; address: string; alive: boolean }>(
      `SELECT pod_id, address, lease_until > now() AS alive FROM ledger_pod ORDER BY pod_id`,
    );
    return res.rows.map((r) => ({ podId: r.pod_id, address: r.address, alive: r.alive }));
  }

  /** Every shard that has an owner row (a shard never claimed has none). */
  async list(): Promise<DirectoryRow[]> {
    const sql = 'SELECT shard, epoch, owner, state, target FROM shard_owner ORDER BY shard';
    const perDb = await Promise.all(this.dbs.map((db) => db.pool.query<OwnerRow>(sql)));
    return perDb.flatMap((res) => res.rows.map(toRow)).sort((a, b) => a.shard - b.shard);
  }

  async get(shard: number): Promise<DirectoryRow | null> {
    const res = await this.poolOf(shard).query<OwnerRow>(
      'SELECT shard, epoch, owner, state, target FROM shard_owner WHERE shard = $1', [shard]);
    const row = res.rows[0];
    return row === undefined ? null : toRow(row);
  }

  /** The conditional claim described above: the new epoch, or null if not allowed. */
  async claim(shard: number): Promise<number | null> {
    const pool = this.poolOf(shard);
    const created = await pool.query<{ epoch: string }>(CLAIM_NEW_SQL, [shard, this.opts.podId]);
    const first = created.rows[0];
    if (first !== undefined) return Number(first.epoch);
    const res = await pool.query<{ epoch: string }>(CLAIM_SQL, [shard, this.opts.podId]);
    const row = res.rows[0];
    return row === undefined ? null : Number(row.epoch);
  }

  /** recovering → active once this pod serves the shard at `epoch`; false if it lost it. */
  markActive(shard: number, epoch: number): Promise<boolean> {
    return this.update(
      `UPDATE shard_owner SET state = 'active', target = NULL, updated_at = now()
        WHERE shard = $1 AND owner = $2 AND epoch = $3 RETURNING shard`,
      [shard, this.opts.podId, epoch],
    );
  }

  /**
   * active → moving: this pod released the shard (its last commit is durable) and hands it to
   * `target`, which may now claim it. False if this pod no longer owns it at `epoch`.
   */
  markMoving(shard: number, epoch: number, target: string): Promise<boolean> {
    return this.update(
      `UPDATE shard_owner SET state = 'moving', target = $4, updated_at = now()
        WHERE shard = $1 AND owner = $2 AND epoch = $3 AND ${RELAXED_COMMIT} RETURNING shard`,
      [shard, this.opts.podId, epoch, target],
    );
  }

  /** The last journal sequence of each shard (admin listing; an index-only scan each). */
  async lastSequences(): Promise<Map<number, number>> {
    const sql = `SELECT o.shard, j.sequence FROM shard_owner o
      LEFT JOIN LATERAL (SELECT sequence FROM journal WHERE shard = o.shard
                         ORDER BY sequence DESC LIMIT 1) j ON true`;
    const perDb = await Promise.all(this.dbs.map((db) =>
      db.pool.query<{ shard: number; sequence: string | null }>(sql)));
    const out = new Map<number, number>();
    for (const res of perDb) {
      for (const r of res.rows) out.set(r.shard, r.sequence === null ? 0 : Number(r.sequence));
    }
    return out;
  }

  /**
   * Calls `onChange(shard)` on every change of a shard's owner row, in any database. A lost
   * listen connection is re-opened after a second; callers also poll, so a notification
   * missed meanwhile only delays a change, never loses it.
   */
  async listen(onChange: (shard: number) => void): Promise<void> {
    this.onChange = onChange;
    await Promise.all(this.dbs.map((db) => this.listenOn(db)));
  }

  private async listenOn(db: Db): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: db.url, keepAlive: true });
    db.listener = client;
    const retry = (): void => {
      if (db.listener !== client || this.closed) return;
      db.listener = null;
      client.end().catch(() => undefined);
      setTimeout(() => void this.listenOn(db).catch(retry), RELISTEN_MS).unref();
    };
    client.on('error', retry);
    client.on('end', retry);
    client.on('notification', (msg) => {
      const shard = Number(msg.payload);
      if (Number.isSafeInteger(shard)) this.onChange?.(shard);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANNEL}`);
    } catch (err) {
      retry();
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const db of this.dbs) {
      const l = db.listener;
      db.listener = null;
      if (l !== null) await l.end().catch(() => undefined);
    }
    await Promise.all(this.dbs.map((db) => db.pool.end()));
  }

  private poolOf(shard: number): pg.Pool {
    return (this.dbs[this.databaseOf(shard)] as Db).pool;
  }

  private async update(sql: string, args: unknown[]): Promise<boolean> {
    const shard = args[0] as number;
    const res = await this.poolOf(shard).query(sql, args);
    return (res.rowCount ?? 0) > 0;
  }
}

function toRow(r: OwnerRow): DirectoryRow {
  const state = SHARD_STATES.find((s) => s === r.state) ?? 'recovering';
  return { shard: r.shard, epoch: Number(r.epoch), owner: r.owner, state, target: r.target };
}
