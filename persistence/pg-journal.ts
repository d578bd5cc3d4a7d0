// PostgreSQL journal sink: one binary COPY per shard database per group, fenced by owner epochs
// that PostgreSQL itself checks. Never acknowledges before COMMIT; never decides business rules.

import { Writable } from 'node:stream';
import pg from 'pg';
import { from as copyFrom, to as copyTo } from 'pg-copy-streams';
import { EntryEncoder, hashKey } from '../protocol/journal-codec.js';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { ChainHead, JournalSink } from '../protocol/storage.js';
import {
  CopyBinaryDecoder,
  CopyBinaryEncoder,
  JOURNAL_COLUMNS,
  JOURNAL_COLUMN_LIST,
  readJournalRow,
  writeJournalRow,
} from './pg-copy-binary.js';
import { STALE_EPOCH_SQLSTATE, migrate } from './pg-schema.js';

/*
 * Shard → database mapping, FIXED FOREVER: database index = shard % urls.length, where urls
 * is LEDGER_PG_URLS in its configured order. Changing the list's length or order moves shards
 * away from their journals; growing the cluster means moving shards with a migration tool,
 * never editing the list.
 *
 * One commit = per touched database, ONE statement: `COPY journal FROM STDIN (FORMAT binary)`
 * in autocommit. PostgreSQL runs it as one transaction: the rows, the fence trigger (see
 * pg-schema: it locks the shards' owner rows FOR SHARE and raises unless every row carries
 * its shard's current epoch) and the COMMIT, which with synchronous_commit=on (forced per
 * session below) flushes WAL before the server reports completion. That is BEGIN / fence /
 * COPY / COMMIT in one round trip instead of four. Databases commit in parallel and commit()
 * settles only when every database has answered.
 *
 * Across databases a group is not atomic: if database A commits and B fails, A's rows are
 * durable but unacknowledged (the group rejects, the worker exits and recovers them from the
 * journal; clients retrying with the same ids get the original results). Nothing acknowledged
 * is ever missing, and within a database nothing is half-applied.
 */

export const EPOCH_MAX = 0xffff_ffff; // journal-codec stores the epoch as u32

export type PgJournalErrorCode =
  | 'stale_epoch'
  | 'journal_corrupt'
  | 'storage_unavailable'
  | 'journal_failed'
  | 'invalid_append';

export class PgJournalError extends Error {
  constructor(
    readonly code: PgJournalErrorCode,
    message: string,
    readonly retryable: boolean,
  ) {
    super(`${code}: ${message}`);
    this.name = 'PgJournalError';
  }
}

export interface PgJournalOptions {
  /** this pod's id, recorded as shard owner and in application_name */
  podId: string;
  /** connections per database (default 2: one committing, one for replay or claims) */
  poolSize?: number;
  /** server-side statement_timeout (default 30 s) */
  statementTimeoutMs?: number;
  /** give up connecting after this long (default 5 s) */
  connectTimeoutMs?: number;
  /** client-side bound on one database's commit, covering a dead server (default 30 s) */
  commitTimeoutMs?: number;
  /** CopyData chunk size written to the socket (default 256 KiB) */
  copyChunkBytes?: number;
}

interface Db {
  index: number;
  pool: pg.Pool;
  encoder: CopyBinaryEncoder;
}

/** A chain head with the hash kept in journal-codec's latin1 form (cheap compare and copy). */
interface Head {
  sequence: number;
  key: string;
}

interface HeadRow {
  shard: number;
  /** bigint arrives as text */
  sequence: string | null;
  hash: Buffer | null;
}

interface EncodedGroup {
  /** the chain heads the group leads to, per touched shard */
  next: Map<number, Head>;
  touched: Db[];
}

const COPY_IN_SQL = `COPY journal (${JOURNAL_COLUMN_LIST}) FROM STDIN (FORMAT binary)`;
const ZERO_KEY = hashKey(ZERO_HASH);

function intOption(name: string, value: number | undefined, fallback: number, max: number): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v < 1 || v > max) {
    throw new RangeError(`PgJournal: ${name} must be an integer from 1 to ${max}, got ${v}`);
  }
  return v;
}

export class PgJournal implements JournalSink {
  private readonly dbs: Db[];
  private readonly heads = new Map<number, Head>();
  private readonly epochs = new Map<number, number>();
  /** scratch for hashing: reset per entry, so it never grows past one record */
  private readonly hasher = new EntryEncoder(4096);
  private readonly commitTimeoutMs: number;
  private readonly chunkBytes: number;
  private failed: Error | null = null;
  private tail: Promise<void> = Promise.resolve();
  private state: 'new' | 'open' | 'closed' = 'new';

  constructor(urls: readonly string[], private readonly opts: PgJournalOptions) {
    if (urls.length === 0) throw new RangeError('PgJournal: at least one database URL');
    if (!/^[A-Za-z0-9._:-]{1,64}$/.test(opts.podId)) {
      throw new RangeError('PgJournal: podId must be 1-64 of [A-Za-z0-9._:-]');
    }
    const poolSize = intOption('poolSize', opts.poolSize, 2, 64);
    const statementTimeout =
      intOption('statementTimeoutMs', opts.statementTimeoutMs, 30_000, 3.6e6);
    const connectTimeout = intOption('connectTimeoutMs', opts.connectTimeoutMs, 5_000, 3.6e6);
    this.commitTimeoutMs = intOption('commitTimeoutMs', opts.commitTimeoutMs, 30_000, 3.6e6);
    this.chunkBytes = intOption('copyChunkBytes', opts.copyChunkBytes, 256 * 1024, 64 * 2 ** 20);
    this.dbs = urls.map((url, index) => {
      const pool = new pg.Pool({
        connectionString: url,
        max: poolSize,
        application_name: `ledger:${opts.podId}`,
        statement_timeout: statementTimeout,
        idle_in_transaction_session_timeout: statementTimeout,
        connectionTimeoutMillis: connectTimeout,
        keepAlive: true,
        keepAliveInitialDelayMillis: 10_000,
        // Guarantee 1 rests on this: never trust the server's default for it.
        options: '-c synchronous_commit=on',
      });
      // An idle connection that dies (server restart) is dropped by the pool; the next query
      // fails and reports it. Without a listener the 'error' event would kill the process.
      pool.on('error', () => undefined);
      return { index, pool, encoder: new CopyBinaryEncoder() };
    });
  }

  /** The database holding a shard's journal (fixed mapping: shard % urls.length). */
  databaseOf(shard: number): number {
    return shard % this.dbs.length;
  }

  async open(shards: readonly number[], epoch: number): Promise<void> {
    if (this.state !== 'new') throw new Error(`PgJournal.open: already ${this.state}`);
    if (!Number.isSafeInteger(epoch) || epoch < 0 || epoch > EPOCH_MAX) {
      throw new RangeError(`PgJournal.open: epoch must be an integer from 0 to ${EPOCH_MAX}`);
    }
    for (const s of shards) {
      if (!Number.isSafeInteger(s) || s < 0 || s > 0x7fff_ffff) {
        throw new RangeError(`PgJournal.open: bad shard ${s}`);
      }
    }
    this.state = 'open';
    const byDb = this.dbs.map((db) => ({ db, shards: [] as number[] }));
    for (const s of [...new Set(shards)].sort((a, b) => a - b)) {
      byDb[this.databaseOf(s)]?.shards.push(s);
    }
    await settleAll(byDb.map(({ db, shards: own }) => this.openDb(db, own, epoch)));
  }

  private async openDb(db: Db, shards: number[], epoch: number): Promise<void> {
    const client = await this.connect(db);
    try {
      await migrate(client);
      if (shards.length === 0) return client.release();
      const claimed = await this.claim(client, db, shards, epoch);
      for (const [shard, e] of claimed) this.epochs.set(shard, e);
      // Read heads only after the claim committed: an old owner's commit either finished
      // before our UPDATE got the row lock (we see its rows) or fails on the fence.
      const res = await client.query<HeadRow>(
        `SELECT s AS shard, j.sequence, j.hash FROM unnest($1::int[]) s
         LEFT JOIN LATERAL (SELECT sequence, hash FROM journal WHERE shard = s
                            ORDER BY sequence DESC LIMIT 1) j ON true`,
        [shards],
      );
      for (const row of res.rows) {
        const sequence = row.sequence === null ? 0 : Number(row.sequence);
        const key = row.hash === null ? ZERO_KEY : row.hash.toString('latin1');
        this.heads.set(row.shard, { sequence, key });
      }
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    }
  }

  /**
   * Claims the shards in one transaction. Epoch 0: current + 1 (1 for a new shard). A positive
   * epoch: exactly that one, only if higher than every shard's current epoch, else throws
   * stale_epoch and claims nothing in this database.
   */
  private async claim(
    client: pg.PoolClient,
    db: Db,
    shards: number[],
    epoch: number,
  ): Promise<Map<number, number>> {
    await client.query('BEGIN');
    const res = await client.query<{ shard: number; epoch: string }>(
      `INSERT INTO shard_owner AS o (shard, epoch, owner)
         SELECT s, CASE WHEN $2::bigint = 0 THEN 1 ELSE $2::bigint END, $3
         FROM unnest($1::int[]) s ORDER BY s
       ON CONFLICT (shard) DO UPDATE
         SET epoch = CASE WHEN $2::bigint = 0 THEN o.epoch + 1 ELSE $2::bigint END,
             owner = EXCLUDED.owner, updated_at = now()
         WHERE $2::bigint = 0 OR o.epoch < $2::bigint
       RETURNING shard, epoch`,
      [shards, epoch, this.opts.podId],
    );
    const claimed = new Map(res.rows.map((r) => [r.shard, Number(r.epoch)]));
    const lost = shards.filter((s) => !claimed.has(s));
    const huge = [...claimed].filter(([, e]) => e > EPOCH_MAX);
    if (lost.length > 0 || huge.length > 0) {
      await client.query('ROLLBACK');
      if (huge.length > 0) throw new RangeError(`PgJournal: epoch overflow on shards ${huge}`);
      const cur = await client.query<{ shard: number; epoch: string; owner: string }>(
        'SELECT shard, epoch, owner FROM shard_owner WHERE shard = ANY($1::int[]) ORDER BY shard',
        [lost],
      );
      const owners = cur.rows.map((r) => `shard ${r.shard} at epoch ${r.epoch} (${r.owner})`);
      throw new PgJournalError(
        'stale_epoch',
        `database ${db.index}: cannot claim epoch ${epoch}, already owned: ${owners.join(', ')}`,
        false,
      );
    }
    await client.query('COMMIT');
    return claimed;
  }

  /**
   * Opens one more shard at an epoch the shard directory already claimed for this pod
   * (persistence/shard-directory.ts), after open(). Refuses unless the shard's owner row
   * still says (this pod, exactly `epoch`): a newer claim in between means this pod lost it.
   * The head is read after that check, so every commit of an older owner is in it or fenced.
   */
  async adopt(shard: number, epoch: number): Promise<void> {
    if (this.state !== 'open') throw new Error(`PgJournal.adopt: journal is ${this.state}`);
    if (!Number.isSafeInteger(shard) || shard < 0 || shard > 0x7fff_ffff) {
      throw new RangeError(`PgJournal.adopt: bad shard ${shard}`);
    }
    const db = this.dbs[this.databaseOf(shard)] as Db;
    const client = await this.connect(db);
    try {
      const owner = await client.query<{ epoch: string; owner: string }>(
        'SELECT epoch, owner FROM shard_owner WHERE shard = $1', [shard]);
      const row = owner.rows[0];
      if (row === undefined || Number(row.epoch) !== epoch || row.owner !== this.opts.podId) {
        const now = row === undefined ? 'no owner' : `epoch ${row.epoch} (${row.owner})`;
        const message = `shard ${shard}: adopt epoch ${epoch}, ${now}`;
        throw new PgJournalError('stale_epoch', message, false);
      }
      const res = await client.query<HeadRow>(
        `SELECT $1::int AS shard, sequence, hash FROM journal WHERE shard = $1
         ORDER BY sequence DESC LIMIT 1`, [shard]);
      const head = res.rows[0];
      const sequence = head?.sequence == null ? 0 : Number(head.sequence);
      const key = head?.hash == null ? ZERO_KEY : head.hash.toString('latin1');
      this.heads.set(shard, { sequence, key });
      this.epochs.set(shard, epoch);
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    }
  }

  /** Stops appending for a shard (the caller drained its commits first). */
  forget(shard: number): void {
    this.heads.delete(shard);
    this.epochs.delete(shard);
  }

  epochOf(shard: number): number {
    const epoch = this.epochs.get(shard);
    if (epoch === undefined) throw new Error(`PgJournal: shard ${shard} is not open`);
    return epoch;
  }

  head(shard: number): ChainHead {
    const h = this.heads.get(shard);
    if (h === undefined) throw new Error(`PgJournal: shard ${shard} is not open`);
    return { sequence: h.sequence, hash: Buffer.from(h.key, 'latin1') };
  }

  /**
   * Overlapping calls are serialized in call order (GroupCommit never overlaps them, but a
   * sink must not fork its chain if a caller does): each continues the previous one's chain.
   */
  commit(entries: readonly JournalEntry[]): Promise<void> {
    const run = this.tail.then(() => this.commitNow(entries));
    this.tail = run.catch(() => undefined); // the failure is `run`'s and `this.failed`'s
    return run;
  }

  private async commitNow(entries: readonly JournalEntry[]): Promise<void> {
    if (this.failed) throw this.failed;
    if (this.state !== 'open') throw new Error(`PgJournal.commit: journal is ${this.state}`);
    if (entries.length === 0) return;
    let next: Map<number, Head>;
    let touched: Db[];
    try {
      ({ next, touched } = this.encodeGroup(entries));
    } catch (err) {
      throw this.fail(err);
    }
    const results = await Promise.allSettled(touched.map((db) => this.copyIn(db)));
    const problems = results.flatMap((r, i) =>
      r.status === 'rejected' ? [`database ${touched[i]?.index}: ${describe(r.reason)}`] : [],
    );
    if (problems.length > 0) {
      const stale = results.some((r) => r.status === 'rejected' && isStaleEpoch(r.reason));
      throw this.fail(
        stale
          ? new PgJournalError('stale_epoch', problems.join('; '), false)
          : new PgJournalError('storage_unavailable', problems.join('; '), true),
      );
    }
    for (const [shard, head] of next) this.heads.set(shard, head);
  }

  /**
   * Hashes the entries in order, continuing each shard's chain, into one COPY stream per
   * touched database. Returns the heads they lead to (applied only after every COMMIT).
   */
  private encodeGroup(entries: readonly JournalEntry[]): EncodedGroup {
    const next = new Map<number, Head>();
    const touched: Db[] = [];
    for (const e of entries) {
      let head = next.get(e.shard);
      if (head === undefined) {
        const h = this.heads.get(e.shard);
        if (h === undefined) throw invalidAppend(`shard ${e.shard} is not open`);
        head = { sequence: h.sequence, key: h.key };
        next.set(e.shard, head);
      }
      if (e.sequence !== head.sequence + 1) {
        throw invalidAppend(`shard ${e.shard}: sequence ${e.sequence} after ${head.sequence}`);
      }
      const db = this.dbs[this.databaseOf(e.shard)] as Db;
      if (!touched.includes(db)) {
        touched.push(db);
        db.encoder.begin();
      }
      this.hasher.reset();
      const key = this.hasher.appendOne(e, head.key);
      writeJournalRow(db.encoder, e, head.key, key);
      head.sequence = e.sequence;
      head.key = key;
    }
    return { next, touched };
  }

  /** One autocommit COPY of the database's encoded rows; resolves after its COMMIT. */
  private async copyIn(db: Db): Promise<void> {
    const data = db.encoder.finish();
    const client = await this.connect(db);
    let timer: NodeJS.Timeout | undefined;
    try {
      const stream = client.query(copyFrom(COPY_IN_SQL));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`commit took over ${this.commitTimeoutMs} ms`)),
          this.commitTimeoutMs,
        );
      });
      await Promise.race([writeAll(stream, data, this.chunkBytes), timeout]);
      client.release();
    } catch (err) {
      // The connection's protocol state is unknown after a failed COPY: never reuse it.
      client.release(err instanceof Error ? err : true);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async replay(
    shard: number,
    head: ChainHead,
    onEntry: (entry: JournalEntry) => void,
  ): Promise<ChainHead> {
    if (!Number.isSafeInteger(shard) || shard < 0 || !Number.isSafeInteger(head.sequence)) {
      throw new RangeError(`PgJournal.replay: bad shard ${shard} or head ${head.sequence}`);
    }
    const db = this.dbs[this.databaseOf(shard)] as Db;
    const chain = new ChainCheck(shard, head, this.hasher);
    const decoder = new CopyBinaryDecoder(JOURNAL_COLUMNS.length, (row) => {
      onEntry(chain.next(readJournalRow(row)));
    });
    const client = await this.connect(db);
    try {
      // COPY takes no bind parameters; both values are checked safe integers above.
      const stream = client.query(copyTo(
        `COPY (SELECT ${JOURNAL_COLUMN_LIST} FROM journal WHERE shard = ${shard} ` +
          `AND sequence > ${head.sequence} ORDER BY sequence) TO STDOUT (FORMAT binary)`,
      ));
      for await (const chunk of stream) decoder.push(chunk as Buffer);
      decoder.end();
      client.release();
    } catch (err) {
      client.release(err instanceof Error ? err : true);
      throw err;
    }
    return this.checkReplayEnd(shard, chain.head);
  }

  /** A replay of an open shard must end exactly at the head loaded by open(). */
  private checkReplayEnd(shard: number, end: Head): ChainHead {
    const known = this.heads.get(shard);
    if (known !== undefined && (known.sequence !== end.sequence || known.key !== end.key)) {
      throw new PgJournalError(
        'journal_corrupt',
        `shard ${shard}: replay ended at sequence ${end.sequence}, but the journal head is ` +
          `${known.sequence}${known.sequence === end.sequence ? ' with a different hash' : ''}`,
        false,
      );
    }
    return { sequence: end.sequence, hash: Buffer.from(end.key, 'latin1') };
  }

  async close(): Promise<void> {
    if (this.state === 'closed') return;
    this.state = 'closed';
    await Promise.all(this.dbs.map((db) => db.pool.end()));
  }

  private async connect(db: Db): Promise<pg.PoolClient> {
    try {
      return await db.pool.connect();
    } catch (err) {
      const message = `database ${db.index}: ${describe(err)}`;
      throw new PgJournalError('storage_unavailable', message, true);
    }
  }

  /** After a failed commit the sink refuses more: memory may be ahead of the database. */
  private fail(err: unknown): Error {
    const e = err instanceof Error ? err : new Error(String(err));
    this.failed = e;
    return e;
  }
}

/** Verifies sequence continuity and the hash chain of one shard's rows as they stream in. */
class ChainCheck {
  readonly head: Head;

  constructor(
    private readonly shard: number,
    from: ChainHead,
    private readonly hasher: EntryEncoder,
  ) {
    this.head = { sequence: from.sequence, key: hashKey(from.hash) };
  }

  next(row: { entry: JournalEntry; prevKey: string; hashKey: string }): JournalEntry {
    const e = row.entry;
    const expected = this.head.sequence + 1;
    const where = `shard ${this.shard} sequence ${expected}`;
    if (e.shard !== this.shard) throw corrupt(`${where}: row belongs to shard ${e.shard}`);
    if (e.sequence !== expected) {
      throw corrupt(`${where}: found sequence ${e.sequence} instead (missing rows)`);
    }
    if (row.prevKey !== this.head.key) {
      throw corrupt(`${where}: prev_hash is not the hash of sequence ${this.head.sequence}`);
    }
    let key: string;
    try {
      this.hasher.reset();
      key = this.hasher.appendOne(e, this.head.key);
    } catch (err) {
      throw corrupt(`${where}: entry cannot be encoded: ${describe(err)}`);
    }
    if (key !== row.hashKey) {
      throw corrupt(`${where}: hash does not match the row's contents (row edited)`);
    }
    this.head.sequence = expected;
    this.head.key = key;
    return e;
  }
}

function corrupt(message: string): PgJournalError {
  return new PgJournalError('journal_corrupt', message, false);
}

function invalidAppend(message: string): PgJournalError {
  return new PgJournalError('invalid_append', message, false);
}

function isStaleEpoch(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === STALE_EPOCH_SQLSTATE;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Awaits every promise (none left running), then throws the first failure if any. */
async function settleAll(promises: Promise<void>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  for (const r of results) if (r.status === 'rejected') throw r.reason;
}

/** Writes `data` in chunks, waiting for 'drain' when asked; resolves when the COPY finished. */
function writeAll(stream: Writable, data: Buffer, chunkBytes: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let offset = 0;
    stream.once('error', reject);
    stream.once('finish', resolve);
    const pump = (): void => {
      while (offset < data.length) {
        const end = Math.min(offset + chunkBytes, data.length);
        const more = stream.write(data.subarray(offset, end));
        offset = end;
        if (!more) {
          stream.once('drain', pump);
          return;
        }
      }
      stream.end();
    };
    pump();
  });
}
