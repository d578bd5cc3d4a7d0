// Compares a replayed shard state with a persisted snapshot taken at the same sequence: chain
// head, then the deterministic snapshot bytes, then account by account. Never changes either.

import { hashKey } from '../../protocol/journal-codec.js';
import type { Snapshot } from '../../protocol/storage.js';
import { IdTable } from '../../shards/id-table.js';
import type { Account, ShardState } from '../../shards/ledger-book.js';
import { decodeSnapshot, encodeSnapshot } from '../../shards/snapshot-codec.js';

export interface SnapshotDifference {
  expected: string;
  found: string;
  detail: string;
}

const DIFFERENCES_MAX = 20;

function totals(a: Account): string {
  return `posted ${a.postedDebits} dr / ${a.postedCredits} cr, pending ${a.pendingDebits} dr / ` +
    `${a.pendingCredits} cr`;
}

/**
 * `state` is the replayed state right after the entry with sequence snap.head.sequence, whose
 * verified hash is `chainKey`. Expected values are the journal's, found values the snapshot's.
 */
export function compareSnapshot(
  state: ShardState,
  chainKey: string,
  snap: Snapshot,
): SnapshotDifference[] {
  const hex = (k: string): string => Buffer.from(k, 'latin1').toString('hex');
  if (hashKey(snap.head.hash) !== chainKey) {
    return [{ expected: hex(chainKey), found: hex(hashKey(snap.head.hash)),
      detail: `snapshot head hash at sequence ${snap.head.sequence} is not the journal's` }];
  }
  let decoded: ShardState;
  try {
    decoded = decodeSnapshot(snap.state);
  } catch (err) {
    return [{ expected: 'a decodable snapshot state', found: String(err), detail: 'snapshot' }];
  }
  // The live state carries the sink's epoch, which may be newer than any entry's: not money.
  const epoch = state.epoch;
  state.epoch = decoded.epoch;
  const same = Buffer.from(encodeSnapshot(state)).equals(Buffer.from(encodeSnapshot(decoded)));
  state.epoch = epoch;
  if (same) return [];
  const out = accountDifferences(state, decoded);
  if (out.length === 0) {
    out.push({ expected: 'the replayed state', found: 'a different state',
      detail: 'balances agree; transfers, holds or history differ from the replay' });
  }
  return out;
}

function accountDifferences(replayed: ShardState, snap: ShardState): SnapshotDifference[] {
  const out: SnapshotDifference[] = [];
  const tenants = new Set([...replayed.tenants.keys(), ...snap.tenants.keys()]);
  for (const tenant of [...tenants].sort()) {
    const mine = replayed.tenants.get(tenant)?.accounts ?? new IdTable<Account>();
    const theirs = snap.tenants.get(tenant)?.accounts ?? new IdTable<Account>();
    const ids = new Set([...mine.keys(), ...theirs.keys()]);
    for (const id of [...ids].sort()) {
      const a = mine.get(id);
      const b = theirs.get(id);
      const expected = a === undefined ? 'no account' : totals(a);
      const found = b === undefined ? 'no account' : totals(b);
      if (expected === found) continue;
      out.push({ expected, found, detail: `tenant ${tenant} account ${id}` });
      if (out.length >= DIFFERENCES_MAX) return out;
    }
  }
  return out;
}
