// The synthetic shard the recovery and snapshot-pause benchmarks grow: account opens across
// 100 tenants, then plain transfers between them. Deterministic; measures nothing itself.

import type { JournalEntry } from '../protocol/journal-entry.js';
import type { Envelope } from '../protocol/types.js';
import { applyBatch, createShardState, type ShardState } from '../shards/state-machine.js';

const TENANTS = 100;
const BATCH = 8190;
/** entries per journal group while generating: big groups, few fsyncs */
const GROUP = 8 * BATCH;
export const START_MS = 1_700_000_000_000;

function openCmd(i: number): Envelope {
  return { tenant: `t${i % TENANTS}`, cmd: { op: 'createAccount', id: `a${Math.floor(i / TENANTS)}`,
    currencyCode: 'USD', allowNegative: true, metadata: '{}' } };
}

/** Transfer number `i` among `accounts` accounts (ids x0, x1, ... per tenant). */
export function transferCmd(i: number, accounts: number, prefix = 'x'): Envelope {
  const perTenant = Math.max(2, Math.floor(accounts / TENANTS));
  const k = Math.floor(i / TENANTS);
  return { tenant: `t${i % TENANTS}`, cmd: { op: 'transfer', id: `${prefix}${k}`,
    fromAccountId: `a${k % perTenant}`, toAccountId: `a${(k * 7 + 1) % perTenant}`,
    amountMinor: BigInt(1 + (k % 97)), currencyCode: 'USD', description: null,
    paymentTypeId: null, pending: false, timeoutSeconds: null } };
}

/**
 * Drives one shard to `entries` journal entries: `accounts` account-opens, then transfers.
 * `sink` receives each group's entries; one group is handed over while the next is applied.
 */
export async function grow(state: ShardState, accounts: number, entries: number,
  sink: (e: JournalEntry[]) => Promise<void>): Promise<void> {
  let opened = Math.min(state.sequence, accounts);
  let sent = Math.max(0, state.sequence - accounts);
  let time = START_MS + state.sequence;
  const batch: Envelope[] = [];
  let pending: JournalEntry[] = [];
  let inflight: Promise<void> = Promise.resolve();
  while (state.sequence < entries) {
    batch.length = 0;
    const room = Math.min(BATCH, entries - state.sequence);
    for (let i = 0; i < room; i++) {
      batch.push(opened < accounts ? openCmd(opened++) : transferCmd(sent++, accounts));
    }
    applyBatch(state, batch, time++, [], pending);
    if (pending.length >= GROUP) {
      await inflight;
      inflight = sink(pending);
      pending = [];
    }
  }
  await inflight;
  if (pending.length > 0) await sink(pending);
}

/** A shard of `accounts` accounts and `transfers` transfers, in memory only. */
export async function inMemoryShard(accounts: number, transfers: number): Promise<ShardState> {
  const state = createShardState(0, 1);
  await grow(state, accounts, accounts + transfers, async () => undefined);
  return state;
}
