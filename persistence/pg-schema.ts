// Schema migrations of a journal shard database, applied at open under an advisory lock, each
// exactly once (ledger_schema_version). Never edit a shipped migration: append a new one.

import type pg from 'pg';
import { ENTRY_KINDS } from '../protocol/journal-entry.js';

/*
 * Tables
 *
 *   journal       one row per JournalEntry, PRIMARY KEY (shard, sequence). Columns follow
 *                 pg-copy-binary's JOURNAL_COLUMNS. `kind` is the index into ENTRY_KINDS
 *                 (names in journal_kind). `currency` is text, not char(3): the row must hold
 *                 exactly the bytes that were hashed, and char(n) pads.
 *   shard_owner   the fencing token: the epoch of the one pod allowed to append to a shard.
 *   relay_cursor  (migration 3) the Kafka relay's broker-acknowledged position per shard.
 *   ledger_tenant, ledger_token  (migration 4) the tenant registry of multi-pod operation.
 *
 * Fencing is enforced by PostgreSQL, not by the client: a statement-level trigger on journal
 * (transition table, so once per COPY, not per row) locks the shard_owner rows of the shards
 * it wrote FOR SHARE and raises SQLSTATE LDG01 unless every row's epoch equals its shard's
 * owner epoch. A claim (UPDATE shard_owner) therefore waits for in-flight commits of the old
 * owner, and any commit that starts after the claim sees the new epoch and is rolled back.
 *
 * The trigger costs ~15-20% of COPY throughput at 8190-row groups and nothing measurable at
 * 100 (bench/pg-copy-format.bench.ts); it is kept because it checks the epochs the rows
 * actually carry, whatever code wrote them.
 *
 * No secondary index yet: the API serves transaction lookup and account history from the
 * actors' memory, rebuilt from the journal, and an index on (tenant, id) measured -38% COPY
 * rows/s at 8190-row groups (same bench). An auditor or external reader that needs one adds
 * a migration (CREATE INDEX CONCURRENTLY cannot run inside migrate()'s transaction).
 */

export const STALE_EPOCH_SQLSTATE = 'LDG01';
/** pg_advisory_xact_lock key serializing migrations across pods: 'ledg' as an int. */
const MIGRATION_LOCK_KEY = 0x6c656467;

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

const KIND_ROWS = ENTRY_KINDS.map((k, i) => `(${i}, '${k}')`).join(', ');

const FENCE_FUNCTION = `
CREATE FUNCTION ledger_fence_journal() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
  r record;
BEGIN
  -- Shard order: two pods locking overlapping shards always lock in the same order.
  FOR r IN
    SELECT n.shard, n.epoch AS row_epoch, o.epoch AS owner_epoch
    FROM (SELECT DISTINCT shard, epoch FROM new_rows) n
    LEFT JOIN LATERAL (
      SELECT epoch FROM shard_owner WHERE shard_owner.shard = n.shard FOR SHARE
    ) o ON true
    ORDER BY n.shard, n.epoch
  LOOP
    IF r.owner_epoch IS DISTINCT FROM r.row_epoch THEN
      RAISE EXCEPTION 'stale_epoch: shard % is owned at epoch %, the rows carry epoch %',
        r.shard, coalesce(r.owner_epoch::text, '(none)'), r.row_epoch
        USING ERRCODE = '${STALE_EPOCH_SQLSTATE}';
    END IF;
  END LOOP;
  RETURN NULL;
END
$fn$`;

/*
 * Migration 2: the shard directory of multi-pod operation (persistence/shard-directory.ts).
 *   shard_owner.state   active | moving | recovering (lifecycle in src/cluster/handoff.ts)
 *   shard_owner.target  the pod a 'moving' shard is handed to (only it may claim it early)
 *   ledger_pod          one row per pod: its internal address and lease. Leases are per POD,
 *                       not per shard: renewing per-shard leases would UPDATE the shard_owner
 *                       rows that every COPY's fence locks FOR SHARE, so each renewal would
 *                       queue behind in-flight commits (and the next commits behind it). A
 *                       pod row is never touched by a commit. It is written to every shard
 *                       database, so that a claim checks the owner's lease and bumps the
 *                       epoch in ONE statement of the database that fences the shard.
 *   NOTIFY ledger_directory, payload = shard, on every change of a shard_owner row.
 */
const DIRECTORY_SQL = `
ALTER TABLE shard_owner
  ADD COLUMN state text NOT NULL DEFAULT 'active'
    CHECK (state IN ('active', 'moving', 'recovering')),
  ADD COLUMN target text;
CREATE TABLE ledger_pod (
  pod_id text PRIMARY KEY,
  address text NOT NULL,
  heartbeat_at timestamptz NOT NULL DEFAULT now(),
  lease_until timestamptz NOT NULL
);
CREATE FUNCTION ledger_notify_directory() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM pg_notify('ledger_directory', NEW.shard::text);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER shard_owner_notify AFTER INSERT OR UPDATE ON shard_owner
  FOR EACH ROW EXECUTE FUNCTION ledger_notify_directory();
`;

/*
 * Migration 4: the tenant registry of multi-pod operation (persistence/tenant-store.ts). Only
 * database 0 of LEDGER_PG_URLS is used (like the pod list); the tables exist, empty, in the
 * others because every shard database runs the same migrations.
 *   ledger_tenant  one row per tenant id.
 *   ledger_token   SHA-256 of each live bearer token (never the token), its tenant, its age;
 *                  at most TOKENS_PER_TENANT_MAX per tenant, the oldest retired (deleted).
 *   NOTIFY ledger_tenants on every change, sent at commit, so that each pod updates its
 *   in-memory token map without a query: 't <tenant>' (new tenant), '+ <hash hex> <tenant>'
 *   (new token), '- <hash hex> <tenant>' (token removed). Tenant ids never contain spaces.
 */
const TENANT_SQL = `
CREATE TABLE ledger_tenant (
  id text PRIMARY KEY,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE ledger_token (
  token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
  tenant_id text NOT NULL REFERENCES ledger_tenant (id),
  created_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX ledger_token_by_tenant ON ledger_token (tenant_id, created_at);
CREATE FUNCTION ledger_notify_tenants() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_TABLE_NAME = 'ledger_tenant' THEN
    PERFORM pg_notify('ledger_tenants', 't ' || NEW.id);
    RETURN NULL;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    PERFORM pg_notify('ledger_tenants',
      '- ' || encode(OLD.token_hash, 'hex') || ' ' || OLD.tenant_id);
  END IF;
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    PERFORM pg_notify('ledger_tenants',
      '+ ' || encode(NEW.token_hash, 'hex') || ' ' || NEW.tenant_id);
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER ledger_tenant_notify AFTER INSERT ON ledger_tenant
  FOR EACH ROW EXECUTE FUNCTION ledger_notify_tenants();
CREATE TRIGGER ledger_token_notify AFTER INSERT OR UPDATE OR DELETE ON ledger_token
  FOR EACH ROW EXECUTE FUNCTION ledger_notify_tenants();
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'journal, shard_owner, epoch fence',
    sql: `
CREATE TABLE journal_kind (code smallint PRIMARY KEY, name text NOT NULL UNIQUE);
INSERT INTO journal_kind (code, name) VALUES ${KIND_ROWS};
CREATE TABLE shard_owner (
  shard integer PRIMARY KEY CHECK (shard >= 0),
  epoch bigint NOT NULL CHECK (epoch > 0),
  owner text NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE journal (
  shard integer NOT NULL,
  sequence bigint NOT NULL CHECK (sequence > 0),
  epoch bigint NOT NULL,
  kind smallint NOT NULL CHECK (kind >= 0 AND kind < ${ENTRY_KINDS.length}),
  tenant text NOT NULL,
  id text NOT NULL,
  debit_account text NOT NULL,
  credit_account text NOT NULL,
  amount_minor bigint NOT NULL,
  currency text NOT NULL,
  time_ms bigint NOT NULL,
  detail text NOT NULL,
  prev_hash bytea NOT NULL CHECK (length(prev_hash) = 32),
  hash bytea NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (shard, sequence)
);
${FENCE_FUNCTION};
CREATE TRIGGER journal_fence AFTER INSERT ON journal
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION ledger_fence_journal();
`,
  },
  {
    version: 2,
    name: 'shard directory: hand-off state, move target, pod leases, change notifications',
    sql: DIRECTORY_SQL,
  },
  {
    version: 3,
    name: 'relay_cursor',
    // The Kafka relay's position per shard (persistence/relay-cursor.ts): every entry with
    // sequence <= `sequence` was acknowledged by the broker (acks=-1). Written only after that
    // ack; never decreases. In the shard's own database, beside its journal.
    sql: `
CREATE TABLE relay_cursor (
  shard integer PRIMARY KEY CHECK (shard >= 0),
  sequence bigint NOT NULL CHECK (sequence >= 0),
  updated_at timestamptz NOT NULL DEFAULT now()
);
`,
  },  {
    version: 4,
    name: 'tenant registry: ledger_tenant, ledger_token, change notifications',
    sql: TENANT_SQL,
  },
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to SCHEMA_VERSION in one transaction under an advisory lock, so pods
 * starting together apply each migration once; running it again changes nothing. Refuses a
 * database whose schema is newer than this code. Returns the migrations applied.
 */
export async function migrate(client: pg.ClientBase): Promise<number> {
  await client.query('BEGIN');
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
    await client.query(`CREATE TABLE IF NOT EXISTS ledger_schema_version (
      version integer PRIMARY KEY,
      name text NOT NULL,
      applied_at timestamptz NOT NULL DEFAULT now())`);
    const res = await client.query<{ v: number | null }>(
      'SELECT max(version) AS v FROM ledger_schema_version',
    );
    const current = res.rows[0]?.v ?? 0;
    if (current > SCHEMA_VERSION) {
      throw new Error(
        `database schema is at version ${current}, newer than this build's ${SCHEMA_VERSION}`,
      );
    }
    const pending = MIGRATIONS.filter((m) => m.version > current);
    for (const m of pending) {
      await client.query(m.sql);
      await client.query('INSERT INTO ledger_schema_version (version, name) VALUES ($1, $2)', [
        m.version,
        m.name,
      ]);
    }
    await client.query('COMMIT');
    return pending.length;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined); // the original error is what matters
    throw err;
  }
}
