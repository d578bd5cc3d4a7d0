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
