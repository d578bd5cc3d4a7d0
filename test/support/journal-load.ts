// Test and bench helper: commits plausible journal entries (account openings, posts, holds,
// posts of holds, voids, rejections) through a real PgJournal, seeded so a run replays.

import type { JournalEntry } from '../../protocol/journal-entry.js';
import type { PgJournal } from '../../persistence/pg-journal.js';

const ACCOUNTS_PER_TENANT = 6;

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 0x1_0000_0000;
  };
}

interface TenantState {
  name: string;
  opened: number;
  pending: string[];
}

interface ShardState {
  next: number;
  tenants: TenantState[];
}

/**
 * `tenantsPerShard` tenants per shard (`t<shard>-<n>`), interleaved at random in the shard's
 * sequence; each opens its accounts first, then transfers between them. Entries need not pass
 * the state machine's rules: the relay publishes what was committed.
 */
export class JournalLoad {
  /** committed entries (the relay publishes one event each) */
  entries = 0;
  private readonly state = new Map<number, ShardState>();
  private readonly random: () => number;
  private turn = 0;

  constructor(
    private readonly journal: PgJournal,
    private readonly shards: readonly number[],
    seed = 1,
    tenantsPerShard = 2,
  ) {
    this.random = rng(seed);
    for (const s of shards) {
      const tenants = Array.from({ length: tenantsPerShard },
        (_, n): TenantState => ({ name: `t${s}-${n}`, opened: 0, pending: [] }));
      this.state.set(s, { next: journal.head(s).sequence + 1, tenants });
    }
  }

  /** Commits one group of `size` entries, round-robin over the shards. */
  async commitGroup(size: number): Promise<JournalEntry[]> {
    const group: JournalEntry[] = [];
    for (let i = 0; i < size; i++) {
      const shard = this.shards[this.turn++ % this.shards.length] ?? 0;
      group.push(this.entry(shard));
    }
    await this.journal.commit(group);
    this.entries += group.length;
    return group;
  }

  private entry(shard: number): JournalEntry {
    const sh = this.state.get(shard);
    if (sh === undefined) throw new Error(`shard ${shard} not loaded`);
    const sequence = sh.next++;
    const st = sh.tenants[Math.floor(this.random() * sh.tenants.length)];
    if (st === undefined) throw new Error(`shard ${shard} has no tenant`);
    const base = {
      shard, sequence, epoch: this.journal.epochOf(shard), tenant: st.name,
      currencyCode: 'EUR', time: Date.now(),
    };
    if (st.opened < ACCOUNTS_PER_TENANT) {
      const id = `acct-${st.opened++}`;
      return { ...base, kind: 'account-open', id, debitAccountId: '', creditAccountId: id,
        amountMinor: 0n, detail: '{"allowNegative":true,"metadata":{}}' };
    }
    const from = `acct-${Math.floor(this.random() * ACCOUNTS_PER_TENANT)}`;
    const to = `acct-${Math.floor(this.random() * ACCOUNTS_PER_TENANT)}`;
    const amountMinor = BigInt(1 + Math.floor(this.random() * 100_000));
    const transfer = { ...base, id: `tx-${shard}-${sequence}`, debitAccountId: from,
      creditAccountId: to, amountMinor };
    const roll = this.random();
    const held = st.pending[0];
    if (held !== undefined && roll < 0.15) {
      st.pending.shift();
      const kind = roll < 0.1 ? 'post-pending' : 'void';
      return { ...transfer, id: held, kind, detail: kind === 'void' ? '{"reason":"client"}' : '' };
    }
    if (from === to || roll < 0.25) {
      const detail = JSON.stringify({ code: from === to ? 'same_account' : 'insufficient_funds',
        description: null, paymentTypeId: null, pending: false, timeoutSeconds: null });
      return { ...transfer, kind: 'reject', detail };
    }
    const pending = roll < 0.4 && st.pending.length < 100;
    if (pending) st.pending.push(transfer.id);
    return { ...transfer, kind: pending ? 'pending' : 'post',
      detail: '{"description":"rent","paymentTypeId":null,"timeoutSeconds":null}' };
  }
}
