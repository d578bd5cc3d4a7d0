// Audits one shard from its raw stored records: sequence continuity, hash chain, replay through
// the ledger's own applyEntry, double entry, negative balances, two-phase, snapshot. Never writes.

import { EntryEncoder, hashEquals, hashKey } from '../../protocol/journal-codec.js';
import { HASH_BYTES, ZERO_HASH, type JournalEntry } from '../../protocol/journal-entry.js';
import type { Snapshot } from '../../protocol/storage.js';
import {
  batchOf,
  encodedKey,
  type RawRecord,
  type ReadProblem,
  type RecordBatch,
} from '../../persistence/record-batch.js';
import { checkInvariants } from '../../shards/invariants.js';
import { applyEntry, type MovedAccounts } from '../../shards/entry-replay.js';
import { createShardState, type ShardState } from '../../shards/state-machine.js';
import {
  FINDINGS_PER_SHARD_MAX,
  type BalanceRow,
  type Check,
  type Finding,
  type ShardReport,
} from './findings.js';
import { compareSnapshot } from './snapshot-compare.js';
import { buildStatement, type StatementRequest } from './statement.js';

export interface ShardAuditOptions {
  shard: number;
  /** capture balances after this sequence (point in time), or null */
  asOfSequence: number | null;
  /** capture balances after the last entry at or before this time (ms), or null */
  asOfTime: number | null;
  /** restrict balances, totals and business findings to these tenants (null: all) */
  tenants: ReadonlySet<string> | null;
  /** capture balances at the end when no point in time is asked for */
  balancesAtEnd: boolean;
  statement: StatementRequest | null;
  /** the newest snapshot to compare with at its sequence, or null */
  snapshot: Snapshot | null;
}

const ZERO_KEY = hashKey(ZERO_HASH);
/** Records whose stored hashes are compared with their keys at once (see hashesMatch). */
const HASH_RUN = 256;

function hex(key: string): string {
  return Buffer.from(key, 'latin1').toString('hex');
}

function hexAt(buf: Buffer, at: number): string {
  return buf.toString('hex', at, at + HASH_BYTES);
}

/** Whether the 32 bytes at `a` and at `b` are equal. */
function sameHash(view: DataView, a: number, b: number): boolean {
  for (let i = 0; i < HASH_BYTES; i += 4) {
    if (view.getInt32(a + i) !== view.getInt32(b + i)) return false;
  }
  return true;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Which check a replay assertion of applyEntry / the ledger effects belongs to. */
function classify(why: string): Check {
  if (/transaction exists|account exists/.test(why)) return 'duplicate-id';
  if (/not pending|posts more than the hold|void of another amount|illegal transition/
    .test(why)) {
    return 'two-phase';
  }
  return 'replay';
}

export class ShardAudit {
  readonly state: ShardState;
  entries = 0;
  replayed = 0;
  private expected = 1;
  private prevKey = ZERO_KEY;
  /** the chain broke: nothing after it is trusted or read */
  private broken = false;
  /** replay stopped at an entry applyEntry refused: the state is no longer trusted */
  private replaying = true;
  private readonly findings: Finding[] = [];
  private dropped = 0;
  private readonly notices: string[] = [];
  private balances: BalanceRow[] | null = null;
  private balancesAt: { sequence: number; time: number } | null = null;
  /** capture balances before the first entry past either bound */
  private stopSequence: number;
  private stopTime: number;
  private snapshotResult: { sequence: number; matched: boolean } | null = null;
  private readonly hasher = new EntryEncoder(4096);
  private readonly moved: MovedAccounts = { from: null, to: null };
  /** the stored bytes of the batch being audited (addBatch) */
  private buf: Buffer = Buffer.alloc(0);
  private view: DataView = new DataView(new ArrayBuffer(0));
  /** every record of the current run of HASH_RUN has its stored hash equal to its key */
  private hashesMatch = false;
  private readonly started = performance.now();

  constructor(private readonly opts: ShardAuditOptions) {
    this.state = createShardState(opts.shard, 0);
    this.stopSequence = opts.asOfSequence ?? Infinity;
    this.stopTime = opts.asOfTime ?? Infinity;
    if (opts.snapshot !== null && opts.snapshot.head.sequence === 0) this.checkSnapshot(ZERO_KEY);
  }

  /** Feeds records in storage order; returns false once the chain broke (stop reading). */
  add(records: readonly RawRecord[]): boolean {
    return this.addBatch(batchOf(records, (r) => encodedKey(this.hasher, r.entry, r.prevKey)));
  }

  /**
   * Feeds a reader's batch (the records that follow the last batch); returns false once the
   * chain broke (stop reading). Keeps nothing of the batch: the reader reuses it.
   */
  addBatch(batch: RecordBatch): boolean {
    if (this.broken) return false;
    const { entries, keys, prevAt, hashAt, buf } = batch;
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    const snapshotAt = this.opts.snapshot?.head.sequence ?? -1;
    const count = batch.count;
    for (let i = 0; i < count; i++) {
      const e = entries[i];
      const key = keys[i];
      if (e === undefined || key === undefined) throw new RangeError('audit: a short batch');
      this.entries++;
      if (i % HASH_RUN === 0) {
        this.hashesMatch = batch.hashesMatch(i, Math.min(count, i + HASH_RUN));
      }
      const lastAt = i === 0 ? -1 : (hashAt[i - 1] ?? 0);
      if (!this.verify(e, key, prevAt[i] ?? 0, hashAt[i] ?? 0, lastAt)) return false;
      if (e.sequence > this.stopSequence || e.time > this.stopTime) this.captureBalances();
      if (this.replaying) this.replay(e);
      if (e.sequence === snapshotAt) this.checkSnapshot(key);
    }
    return true;
  }

  /** The reader stopped at bytes that are not records. */
  problem(p: ReadProblem): void {
    if (this.broken) return;
    if (p.torn) {
      this.notices.push(`torn tail after sequence ${p.afterSequence} at ${p.where} ` +
        `(${p.reason}): an unacknowledged write, cut when the journal is next opened`);
      return;
    }
    this.broken = true;
    this.add1(this.expected, 'read', `record ${this.expected}`, `unreadable: ${p.reason}`,
      `at ${p.where}`);
  }

  /**
   * The record's place and integrity: its shard, the next sequence, its stored hash (at
   * `hashAt`) equal to `key` (the hash of what is stored), and its stored prevHash (at
   * `prevAt`) equal to the last verified hash. When the last verified record is in the same
   * batch (its hash at `lastAt`, else -1), the link is compared as bytes: the same check,
   * several times faster than against the string.
   */
  private verify(e: JournalEntry, key: string, prevAt: number, hashAt: number, lastAt: number) {
    const buf = this.buf;
    if (e.shard !== this.opts.shard) {
      const want = String(this.opts.shard);
      return this.breakAt('shard', want, String(e.shard), 'entry of another shard');
    }
    if (e.sequence !== this.expected) {
      const why = e.sequence > this.expected ? 'missing entries' : 'duplicate or reordered entry';
      return this.breakAt('sequence', String(this.expected), String(e.sequence), why);
    }
    if (!this.hashesMatch && !hashEquals(buf, hashAt, key)) {
      return this.breakAt('hash', hex(key), hexAt(buf, hashAt),
        'the stored hash does not match the entry: the entry was edited');
    }
    const linked = lastAt === -1 ? hashEquals(buf, prevAt, this.prevKey)
      : sameHash(this.view, prevAt, lastAt);
    if (!linked) return this.brokenLink(e.sequence, buf, prevAt);
    this.prevKey = key;
    this.expected++;
    return true;
  }

  /**
   * The entry is intact (its own hash verifies) but links to a predecessor other than the one
   * stored: the predecessor was rewritten with a recomputed hash after this entry was written.
   */
  private brokenLink(seq: number, buf: Buffer, prevAt: number): boolean {
    this.broken = true;
    this.add1(seq - 1, 'prev-hash', hexAt(buf, prevAt), hex(this.prevKey),
      `entry ${seq} links to a different entry ${seq - 1}: entry ${seq - 1} was rewritten ` +
      `(hash recomputed) after entry ${seq} was written, or entry ${seq}'s link was forged`);
    return false;
  }

  private breakAt(check: Check, expected: string, found: string, detail: string): boolean {
    this.broken = true;
    this.add1(this.expected, check, expected, found, detail);
    return false;
  }

  private replay(e: JournalEntry): void {
    try {
      applyEntry(this.state, e, this.moved);
    } catch (err) {
      const why = message(err);
      this.add1(e.sequence, classify(why), 'an entry the replayed state accepts', why,
        `${e.kind} ${e.id} of tenant ${e.tenant}; replay of this shard stops here`);
      this.replaying = false;
      return;
    }
    this.replayed++;
    if (e.kind === 'post' || e.kind === 'pending' || e.kind === 'post-pending') this.checkMove(e);
  }

  /**
   * Per moving entry: both accounts it moved money between (as applyEntry reports them) in the
   * entry's currency, no forbidden negative balance.
   */
  private checkMove(e: JournalEntry): void {
    if (this.opts.tenants !== null && !this.opts.tenants.has(e.tenant)) return;
    const { from, to } = this.moved;
    if (from === null || to === null) return; // applyEntry moved nothing
    if (from.currencyCode !== e.currencyCode || to.currencyCode !== e.currencyCode) {
      this.add1(e.sequence, 'currency', e.currencyCode,
        `${from.currencyCode} -> ${to.currencyCode}`, `${e.kind} ${e.id} of tenant ${e.tenant}`);
    }
    if (from.allowNegative) return;
    // Narrow totals are exact safe integers: pc - pd is exact, and so is comparing it with hd.
    if (from.wide ? from.postedCredits - from.postedDebits < from.pendingDebits
      : from.pc - from.pd < from.hd) {
      const available = from.postedCredits - from.postedDebits - from.pendingDebits;
      this.add1(e.sequence, 'negative-balance', '>= 0', String(available),
        `tenant ${e.tenant} account ${from.id} (${e.kind} ${e.id}): posted credits - posted ` +
        'debits - pending debits');
    }
  }

  private add1(sequence: number, check: Check, expected: string, found: string, detail: string) {
    if (this.findings.length >= FINDINGS_PER_SHARD_MAX) {
      this.dropped++;
      return;
    }
    this.findings.push({ shard: this.opts.shard, sequence, check, expected, found, detail });
  }

  private captureBalances(): void {
    this.stopSequence = Infinity;
    this.stopTime = Infinity;
    if (!this.replaying) {
      this.notices.push('balances not captured: replay stopped before the requested point');
      return;
    }
    this.balances = balancesOf(this.state, this.opts.tenants);
    this.balancesAt = { sequence: this.state.sequence, time: this.state.time };
  }

  private checkSnapshot(chainKey: string): void {
    const snap = this.opts.snapshot;
    if (snap === null) return;
    if (!this.replaying) {
      this.notices.push(`snapshot at ${snap.head.sequence} not compared: replay stopped`);
      return;
    }
    const found = compareSnapshot(this.state, chainKey, snap);
    for (const f of found) this.add1(snap.head.sequence, 'snapshot', f.expected, f.found, f.detail);
    this.snapshotResult = { sequence: snap.head.sequence, matched: found.length === 0 };
  }

  /** End of the shard's records: whole-state checks, then the report. */
  finish(): ShardReport {
    const trusted = !this.broken && this.replaying;
    const snap = this.opts.snapshot;
    if (!this.broken && snap !== null && this.snapshotResult === null &&
      snap.head.sequence > this.state.sequence && this.replaying) {
      this.add1(this.expected, 'snapshot', `journal up to sequence ${snap.head.sequence}`,
        `journal ends at ${this.expected - 1}`,
        'a snapshot covers entries the journal no longer holds: entries were lost or removed');
    }
    const totals = trusted ? this.checkDoubleEntry() : [];
    if (trusted && this.findings.length === 0) this.checkWholeState();
    if (this.balances === null && (this.opts.balancesAtEnd || this.stopSequence !== Infinity ||
      this.stopTime !== Infinity)) {
      this.captureBalances();
    }
    const statement = trusted && this.opts.statement !== null
      ? buildStatement(this.state, this.opts.statement, (f) => this.add1(f.sequence, f.check,
        f.expected, f.found, f.detail))
      : null;
    return {
      shard: this.opts.shard, entries: this.entries, replayed: this.replayed,
      head: { sequence: this.expected - 1, hashHex: hex(this.prevKey) },
      findings: this.findings, findingsDropped: this.dropped, notices: this.notices,
      balances: this.balances, balancesAt: this.balancesAt, statement,
      snapshot: this.snapshotResult, totals,
      seconds: (performance.now() - this.started) / 1000,
    };
  }

  /** Per tenant and currency the balances sum to zero, and so do the holds. */
  private checkDoubleEntry(): ShardReport['totals'] {
    const totals: ShardReport['totals'] = [];
    for (const [tenant, book] of this.state.tenants) {
      if (this.opts.tenants !== null && !this.opts.tenants.has(tenant)) continue;
      const sums = new Map<string, { accounts: number; posted: bigint; pending: bigint }>();
      for (const a of book.accounts.values()) {
        const s = sums.get(a.currencyCode) ?? { accounts: 0, posted: 0n, pending: 0n };
        s.accounts++;
        s.posted += a.postedCredits - a.postedDebits;
        s.pending += a.pendingCredits - a.pendingDebits;
        sums.set(a.currencyCode, s);
      }
      for (const [currencyCode, s] of sums) {
        totals.push({ tenant, currencyCode, accounts: s.accounts, sumMinor: String(s.posted) });
        if (s.posted !== 0n || s.pending !== 0n) {
          this.add1(this.state.sequence, 'double-entry', '0 posted, 0 pending',
            `${s.posted} posted, ${s.pending} pending`,
            `tenant ${tenant} currency ${currencyCode}: balances do not sum to zero`);
        }
      }
    }
    return totals;
  }

  /** The ledger's own deep invariants (holds match pending transfers, timeouts queued). */
  private checkWholeState(): void {
    try {
      checkInvariants(this.state, { deep: true });
    } catch (err) {
      this.add1(this.state.sequence, 'invariant', 'the ledger invariants hold', message(err),
        'checked on the replayed state at the end of the journal');
    }
  }
}

/** Every account of the state (of `tenants` when given), tenants and accounts sorted by id. */
export function balancesOf(state: ShardState, tenants: ReadonlySet<string> | null): BalanceRow[] {
  const rows: BalanceRow[] = [];
  for (const tenant of [...state.tenants.keys()].sort()) {
    if (tenants !== null && !tenants.has(tenant)) continue;
    const book = state.tenants.get(tenant);
    if (book === undefined) continue;
    const ids = [...book.accounts.keys()].sort();
    for (const id of ids) {
      const a = book.accounts.get(id);
      if (a === undefined) continue;
      rows.push({
        shard: state.shard, tenant, accountId: id, currencyCode: a.currencyCode,
        allowNegative: a.allowNegative, balanceMinor: String(a.postedCredits - a.postedDebits),
        postedDebits: String(a.postedDebits), postedCredits: String(a.postedCredits),
        pendingDebits: String(a.pendingDebits), pendingCredits: String(a.pendingCredits),
      });
    }
  }
  return rows;
}
