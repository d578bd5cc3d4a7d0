// Simulation test in the spirit of TigerBeetle's VOPR: random command streams (seeded by
// fast-check, failing seeds print and replay) are applied to the shard and to an independent,
// deliberately naive model; every reply must match, and journal replay + snapshots must agree.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { errorRecord, type ErrorCode } from '../protocol/errors.js';
import type { JournalEntry } from '../protocol/journal-entry.js';
import type {
  AccountView, Command, Envelope, Outcome, TransactionView, TransferCmd,
} from '../protocol/types.js';
import { checkInvariants } from './invariants.js';
import { decodeSnapshot, encodeSnapshot, stateDigest } from './snapshot-codec.js';
import { applyBatch, applyEntry, createShardState, type ShardState } from './state-machine.js';

const MAX = 2n ** 63n - 1n;
type St = 'posted' | 'pending' | 'postedPending' | 'voidedClient' | 'voidedTimeout';
interface MAccount {
  id: string; currencyCode: string; allowNegative: boolean; metadata: string;
  pd: bigint; pc: bigint; hd: bigint; hc: bigint; createdAt: number;
}
interface MTx {
  body: TransferCmd; code: ErrorCode | null; st: St; postedAmount: bigint;
  createdAt: number; sequence: number; expiresAt: number | null;
}
interface MState {
  seq: number; time: number; accounts: Map<string, MAccount>; txs: Map<string, MTx>;
}

/** The naive model: linear scans, whole-state copies for atomic batches, no shared code. */
class Model {
  s: MState = { seq: 0, time: 0, accounts: new Map(), txs: new Map() };

  private fail(code: ErrorCode): Outcome {
    return { ok: false, error: errorRecord(code) };
  }

  private accView(a: MAccount): AccountView {
    return { id: a.id, currencyCode: a.currencyCode, allowNegative: a.allowNegative,
      metadata: a.metadata, balanceMinor: a.pc - a.pd, postedDebits: a.pd, postedCredits: a.pc,
      pendingDebits: a.hd, pendingCredits: a.hc, createdAt: a.createdAt };
  }

  private txView(t: MTx, st: St, posted: bigint): TransactionView {
    const status = st === 'pending' ? 'pending' : st.startsWith('voided') ? 'voided' : 'posted';
    const b = t.body;
    return { id: b.id, status, fromAccountId: b.fromAccountId, toAccountId: b.toAccountId,
      amountMinor: b.amountMinor, postedAmountMinor: posted, currencyCode: b.currencyCode,
      description: b.description, paymentTypeId: b.paymentTypeId, createdAt: t.createdAt,
      sequence: t.sequence, expiresAt: t.expiresAt };
  }

  batch(envs: Envelope[], now: number): Outcome[] {
    const before = this.s.time;
    const seqBefore = this.s.seq;
    this.s.time = Math.max(this.s.time, now);
    const due = [...this.s.txs.entries()]
      .filter(([, t]) => t.st === 'pending' && t.expiresAt !== null && t.expiresAt <= this.s.time)
      .sort(([ka, a], [kb, b]) => (a.expiresAt ?? 0) - (b.expiresAt ?? 0) || (ka < kb ? -1 : 1));
    for (const [key, t] of due) this.release(key.split('\u0000')[0] ?? '', t, 'voidedTimeout', 0n);
    const out = envs.map((e) => this.cmd(e.tenant, e.cmd));
    if (this.s.seq === seqBefore) this.s.time = before;
    return out;
  }

  private release(tenant: string, t: MTx, st: St, post: bigint): void {
    const from = this.s.accounts.get(`${tenant}\u0000${t.body.fromAccountId}`);
    const to = this.s.accounts.get(`${tenant}\u0000${t.body.toAccountId}`);
    if (!from || !to) throw new Error('model lost an account');
    from.hd -= t.body.amountMinor; to.hc -= t.body.amountMinor;
    from.pd += post; to.pc += post;
    t.st = st; t.postedAmount = post; this.s.seq++;
  }

  private cmd(tenant: string, c: Command): Outcome {
    const k = (id: string) => `${tenant}\u0000${id}`;
    switch (c.op) {
      case 'createAccount': {
        const a = this.s.accounts.get(k(c.id));
        if (a) {
          const same = a.currencyCode === c.currencyCode && a.allowNegative === c.allowNegative &&
            a.metadata === c.metadata;
          return same ? { ok: true, created: false, value: this.accView(a) }
            : this.fail('account_exists');
        }
        const n: MAccount = { id: c.id, currencyCode: c.currencyCode,
          allowNegative: c.allowNegative, metadata: c.metadata, pd: 0n, pc: 0n, hd: 0n, hc: 0n,
          createdAt: this.s.time };
        this.s.accounts.set(k(c.id), n); this.s.seq++;
        return { ok: true, created: true, value: this.accView(n) };
      }
      case 'transfer': return this.transfer(tenant, c);
      case 'transferBatch': {
        const saved = structuredClone(this.s);
        const results = c.transactions.map((t) => this.transfer(tenant, t));
        const failed = results.some((r) => !r.ok);
        if (c.atomic && failed) {
          this.s = saved;
          const fixed = results.map((r) => (r.ok ? this.fail('batch_failed') : r));
          return { ok: true, created: false, value: { results: fixed } };
        }
        return { ok: true, created: results.some((r) => r.ok && r.created), value: { results } };
      }
      case 'post': case 'void': {
        const t = this.s.txs.get(k(c.id));
        if (!t || t.code !== null) return this.fail('transaction_not_found');
        const cur = () => this.txView(t, t.st, t.postedAmount);
        if (c.op === 'void') {
          if (t.st === 'pending') {
            this.release(tenant, t, 'voidedClient', 0n);
            return { ok: true, created: true, value: cur() };
          }
          if (t.st.startsWith('voided')) return { ok: true, created: false, value: cur() };
          return this.fail('transaction_not_pending');
        }
        const same = c.amountMinor === null || c.amountMinor === t.postedAmount;
        if (t.st === 'postedPending' && same) {
          return { ok: true, created: false, value: cur() };
        }
        if (t.st === 'voidedTimeout') return this.fail('pending_expired');
        if (t.st !== 'pending') return this.fail('transaction_not_pending');
        const amt = c.amountMinor ?? t.body.amountMinor;
        if (amt > t.body.amountMinor) return this.fail('amount_exceeds_pending');
        this.release(tenant, t, 'postedPending', amt);
        return { ok: true, created: true, value: cur() };
      }
      case 'getAccount': {
        const a = this.s.accounts.get(k(c.id));
        if (!a) return this.fail('account_not_found');
        return { ok: true, created: false, value: this.accView(a) };
      }
      case 'getTransaction': {
        const t = this.s.txs.get(k(c.id));
        if (!t || t.code !== null) return this.fail('transaction_not_found');
        return { ok: true, created: false, value: this.txView(t, t.st, t.postedAmount) };
      }
      default: throw new Error('model: op not generated');
    }
  }

  private transfer(tenant: string, c: TransferCmd): Outcome {
    const key = `${tenant}\u0000${c.id}`;
    const old = this.s.txs.get(key);
    if (old) {
      const b = old.body;
      const same = b.fromAccountId === c.fromAccountId && b.toAccountId === c.toAccountId &&
        b.amountMinor === c.amountMinor && b.currencyCode === c.currencyCode &&
        b.description === c.description && b.paymentTypeId === c.paymentTypeId &&
        b.pending === c.pending && b.timeoutSeconds === c.timeoutSeconds;
      if (!same) return this.fail('conflict');
      if (old.code !== null) return this.fail(old.code);
      const st = b.pending ? 'pending' : 'posted';
      const posted = b.pending ? 0n : b.amountMinor;
      return { ok: true, created: false, value: this.txView(old, st, posted) };
    }
    const from = this.s.accounts.get(`${tenant}\u0000${c.fromAccountId}`);
    const to = this.s.accounts.get(`${tenant}\u0000${c.toAccountId}`);
    let code: ErrorCode | null = null;
    if (c.fromAccountId === c.toAccountId) code = 'same_account';
    else if (!from || !to) code = 'account_not_found';
    else if (from.currencyCode !== c.currencyCode || to.currencyCode !== c.currencyCode) {
      code = 'currency_mismatch';
    } else if (from.pd + from.hd + c.amountMinor > MAX || to.pc + to.hc + c.amountMinor > MAX) {
      code = 'balance_overflow';
    } else if (!from.allowNegative && from.pc - from.pd - from.hd - c.amountMinor < 0n) {
      code = 'insufficient_funds';
    }
    this.s.seq++;
    const t: MTx = { body: { ...c }, code, st: c.pending ? 'pending' : 'posted',
      postedAmount: c.pending ? 0n : c.amountMinor, createdAt: this.s.time, sequence: this.s.seq,
      expiresAt: code === null && c.pending && c.timeoutSeconds
        ? this.s.time + c.timeoutSeconds * 1000 : null };
    this.s.txs.set(key, t);
    if (code !== null || !from || !to) return this.fail(code ?? 'account_not_found');
    if (c.pending) { from.hd += c.amountMinor; to.hc += c.amountMinor; }
    else { from.pd += c.amountMinor; to.pc += c.amountMinor; }
    return { ok: true, created: true, value: this.txView(t, t.st, t.postedAmount) };
  }
}

// ---- generators: small pools so replays, conflicts and collisions happen often ----
const tenantArb = fc.constantFrom('t1', 't2');
const accountArb = fc.constantFrom('a', 'b', 'c', 'fund');
const txIdArb = fc.constantFrom('x0', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6');
const amountArb = fc.oneof(
  { weight: 10, arbitrary: fc.bigInt(1n, 300n) },
  { weight: 1, arbitrary: fc.constantFrom(2n ** 62n, MAX) },
);
const transferArb: fc.Arbitrary<TransferCmd> = fc.record({
  op: fc.constant('transfer' as const), id: txIdArb, fromAccountId: accountArb,
  toAccountId: accountArb, amountMinor: amountArb,
  currencyCode: fc.oneof({ weight: 8, arbitrary: fc.constant('USD') }, fc.constant('EUR')),
  description: fc.constantFrom(null, 'rent'), paymentTypeId: fc.constant(null),
  pending: fc.boolean(), timeoutSeconds: fc.constantFrom(null, null, 0, 1, 5),
});
const commandArb: fc.Arbitrary<Command> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('createAccount' as const), id: accountArb,
    currencyCode: fc.constantFrom('USD', 'USD', 'EUR'),
    allowNegative: fc.boolean(), metadata: fc.constantFrom('{}', '{"k":1}') }).map((c) =>
    ({ ...c, allowNegative: c.id === 'fund' ? true : c.allowNegative })) },
  { weight: 8, arbitrary: transferArb },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('post' as const), id: txIdArb,
    amountMinor: fc.option(fc.bigInt(1n, 300n)) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('void' as const), id: txIdArb }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('transferBatch' as const),
    atomic: fc.boolean(), transactions: fc.array(transferArb, { maxLength: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('getAccount' as const), id: accountArb }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('getTransaction' as const), id: txIdArb }) },
);
const batchArb = fc.record({
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 }),
    fc.integer({ min: -2000, max: 20_000 })),
  envelopes: fc.array(fc.record({ tenant: tenantArb, cmd: commandArb }), { maxLength: 8 }),
});

/** Most runs start with open accounts, so transfers mostly get past account_not_found. */
function setupBatch(): { advanceMs: number; envelopes: Envelope[] } {
  const envelopes: Envelope[] = [];
  for (const tenant of ['t1', 't2']) {
    for (const [id, currencyCode] of [['fund', 'USD'], ['a', 'USD'], ['b', 'USD'], ['c', 'EUR']]) {
      envelopes.push({ tenant, cmd: { op: 'createAccount', id: id ?? '', currencyCode:
        currencyCode ?? '', allowNegative: id === 'fund', metadata: '{}' } });
    }
  }
  return { advanceMs: 0, envelopes };
}

function replayAll(entries: readonly JournalEntry[]): ShardState {
  const fresh = createShardState(3, 7);
  for (const entry of entries) applyEntry(fresh, entry);
  return fresh;
}

describe('shard simulation against an independent model', () => {
  it('matches the model, keeps invariants, and replays/snapshots to the same digest', () => {
    fc.assert(
      fc.property(fc.array(batchArb, { minLength: 1, maxLength: 30 }), fc.nat(30), fc.boolean(),
        (stream, at, setup) => {
        const batches = setup ? [setupBatch(), ...stream] : stream;
        const live = createShardState(3, 7);
        const replica = createShardState(3, 7);
        const model = new Model();
        const journal: JournalEntry[] = [];
        let restored: ShardState | null = null;
        let now = 1_000_000;
        for (const [index, batch] of batches.entries()) {
          now += batch.advanceMs;
          const results: Outcome[] = [];
          const entries: JournalEntry[] = [];
          applyBatch(live, batch.envelopes, now, results, entries);
          expect(results).toEqual(model.batch(batch.envelopes, now));
          checkInvariants(live);
          expect(entries.map((e) => e.sequence)).toEqual(
            entries.map((_, i) => (journal.length + i + 1)));
          journal.push(...entries);
          for (const entry of entries) applyEntry(replica, entry);
          checkInvariants(replica);
          expect(stateDigest(replica)).toBe(stateDigest(live));
          if (restored !== null) {
            const again: Outcome[] = [];
            applyBatch(restored, batch.envelopes, now, again, []);
            expect(again).toEqual(results);
            expect(stateDigest(restored)).toBe(stateDigest(live));
          }
          if (index === at) restored = decodeSnapshot(encodeSnapshot(live));
        }
        expect(stateDigest(replayAll(journal))).toBe(stateDigest(live));
      }),
      { numRuns: 400 },
    );
  });

  it('answers a replayed batch exactly as before and changes nothing', () => {
    fc.assert(
      fc.property(fc.array(batchArb, { minLength: 1, maxLength: 10 }), (batches) => {
        const live = createShardState(0, 1);
        let now = 5_000;
        for (const batch of batches) {
          now += Math.max(0, batch.advanceMs);
          applyBatch(live, batch.envelopes, now, [], []);
          const writes = batch.envelopes.filter((e) => e.cmd.op === 'transfer');
          const digest = stateDigest(live);
          const again: Outcome[] = [];
          const entries: JournalEntry[] = [];
          applyBatch(live, writes, now, again, entries);
          // Every id exists now: each answer is a replay (original result or conflict).
          for (const outcome of again) {
            if (outcome.ok) expect(outcome.created).toBe(false);
          }
          expect(again.length).toBe(writes.length);
          expect(entries).toEqual([]);
          expect(stateDigest(live)).toBe(digest);
        }
      }),
      { numRuns: 150 },
    );
  });
});
