// ShadowShard: a replica fed with committed entries encodes the same bytes as the live shard,
// also when it starts from its own snapshot, and refuses entries out of sequence.

import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { ZERO_HASH, type JournalEntry } from '../protocol/journal-entry.js';
import type { Envelope } from '../protocol/types.js';
import { ShadowShard } from './snapshot-incremental.js';
import { stateDigest } from './snapshot-codec.js';
import { applyBatch, createShardState } from './state-machine.js';

function batch(n: number): Envelope[] {
  const out: Envelope[] = [];
  if (n === 0) {
    for (const id of ['a', 'b', 'c']) {
      out.push({ tenant: 't', cmd: { op: 'createAccount', id, currencyCode: 'EUR',
        allowNegative: id === 'a', metadata: '{}' } });
    }
    return out;
  }
  for (let k = 0; k < 20; k++) {
    out.push({ tenant: 't', cmd: { op: 'transfer', id: `x${n}-${k}`, fromAccountId: 'a',
      toAccountId: k % 2 ? 'b' : 'c', amountMinor: BigInt(k + 1), currencyCode: 'EUR',
      description: null, paymentTypeId: null, pending: k % 4 === 0,
      timeoutSeconds: k % 4 === 0 ? 60 : null } });
  }
  out.push({ tenant: 't', cmd: { op: 'post', id: `x${n}-0`, amountMinor: null } });
  out.push({ tenant: 't', cmd: { op: 'void', id: `x${n}-4` } });
  return out;
}

describe('ShadowShard', () => {
  it('fed the committed entries, encodes exactly the live state (also from a snapshot)', () => {
    const live = createShardState(5, 3);
    let shadow = ShadowShard.from(5, null, ZERO_HASH);
    for (let n = 0; n < 40; n++) {
      const entries: JournalEntry[] = [];
      applyBatch(live, batch(n), 1_700_000_000_000 + n * 30_000, [], entries);
      shadow.apply(entries, new Uint8Array(32).fill(n));
      if (n === 20) shadow = ShadowShard.from(5, shadow.encode(3), ZERO_HASH);
    }
    const snap = shadow.encode(3);
    expect(snap.head.sequence).toBe(live.sequence);
    const digest = createHash('sha256').update(snap.state).digest('hex');
    expect(digest).toBe(stateDigest(live));
  });

  it('refuses a gap in the entries', () => {
    const live = createShardState(1, 1);
    const entries: JournalEntry[] = [];
    applyBatch(live, batch(0), 1, [], entries);
    const shadow = ShadowShard.from(1, null, ZERO_HASH);
    expect(() => shadow.apply(entries.slice(1), ZERO_HASH)).toThrow(/sequence 2 after 0/);
  });
});
