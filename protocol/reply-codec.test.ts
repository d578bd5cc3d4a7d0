// Tests for reply-codec.ts: every answer comes back equal (key order included, since views
// are rendered as they are), whether it travelled compact or as msgpack; a reply that does
// not match the commands it is decoded with is refused, never misread.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { applyBatch, createShardState } from '../shards/state-machine.js';
import { errorRecord } from './errors.js';
import type { JournalEntry } from './journal-entry.js';
import { decodeReplies, encodeReplies, transferView } from './reply-codec.js';
import type { Envelope, Outcome, TransferCmd } from './types.js';

function transfer(id: string, from: string, to: string, amount: bigint, pending = false,
  timeoutSeconds: number | null = null): TransferCmd {
  return { op: 'transfer', id, fromAccountId: from, toAccountId: to, amountMinor: amount,
    currencyCode: 'USD', description: id.endsWith('d') ? 'rent' : null, paymentTypeId: null,
    pending, timeoutSeconds };
}

/** JSON with bigints as strings: equal text means equal values in the same key order. */
function text(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v));
}

function roundTrip(envelopes: Envelope[], outcomes: Outcome[]): Outcome[] {
  const back = decodeReplies(encodeReplies(envelopes, outcomes), envelopes);
  expect(text(back)).toBe(text(outcomes));
  return back;
}

describe('reply-codec', () => {
  it('round-trips what a real shard answers: creates, replays, rejections, reads', () => {
    const state = createShardState(0, 1);
    const open = (id: string): Envelope => ({ tenant: 't', cmd: { op: 'createAccount', id,
      currencyCode: 'USD', allowNegative: id === 'a', metadata: '{}' } });
    const entries: JournalEntry[] = [];
    applyBatch(state, [open('a'), open('b')], 1000, [], entries);
    const batch: TransferCmd[] = [transfer('x1', 'a', 'b', 5n), transfer('x2d', 'b', 'a', 99n),
      transfer('x3', 'a', 'nope', 1n), transfer('x4', 'a', 'b', 7n, true, 60)];
    const envelopes: Envelope[] = [
      { tenant: 't', cmd: transfer('s1', 'a', 'b', 3n) },
      { tenant: 't', cmd: { op: 'transferBatch', atomic: false, transactions: batch } },
      { tenant: 't', cmd: transfer('s1', 'a', 'b', 3n) },
      { tenant: 't', cmd: transfer('s1', 'a', 'b', 4n) },
      { tenant: 't', cmd: { op: 'getAccount', id: 'a' } },
      { tenant: 't', cmd: { op: 'void', id: 'x4' } },
      { tenant: 't', cmd: transfer('x4', 'a', 'b', 7n, true, 60) },
      { tenant: 't', cmd: { op: 'transferBatch', atomic: true, transactions: batch } },
      { tenant: 't', cmd: { op: 'transferBatch', atomic: false, transactions: [] } },
    ];
    const outcomes: Outcome[] = [];
    applyBatch(state, envelopes, 2000, outcomes, entries);
    const back = roundTrip(envelopes, outcomes);
    expect(back[0]).toMatchObject({ ok: true, created: true, value: { id: 's1' } });
    expect(back[2]).toMatchObject({ ok: true, created: false, value: { id: 's1' } });
    expect(back[3]).toMatchObject({ ok: false, error: { code: 'conflict' } });
  });

  it('round-trips any mix of implied views, other views and errors', () => {
    const item = fc.record({
      pending: fc.boolean(),
      timeout: fc.constantFrom(null, 0, 30),
      shape: fc.constantFrom('created', 'replayed', 'voided', 'error', 'read'),
      time: fc.integer({ min: 0, max: 2 ** 50 }),
      sequence: fc.integer({ min: 0, max: 2 ** 50 }),
    });
    fc.assert(fc.property(fc.array(fc.array(item, { maxLength: 5 }), { maxLength: 6 }),
      (groups) => {
        let n = 0;
        const envelopes: Envelope[] = [];
        const outcomes: Outcome[] = [];
        const answer = (it: { shape: string; time: number; sequence: number },
          cmd: TransferCmd) => answerFor(it.shape, cmd, it.time, it.sequence);
        for (const g of groups) {
          const cmds = g.map((it) => transfer(`id${n++}`, 'a', 'b', BigInt(n), it.pending,
            it.timeout));
          if (g.length === 1 && g[0] !== undefined && cmds[0] !== undefined) {
            envelopes.push({ tenant: 't', cmd: cmds[0] });
            outcomes.push(answer(g[0], cmds[0]));
          } else {
            envelopes.push({ tenant: 't', cmd: { op: 'transferBatch', atomic: false,
              transactions: cmds } });
            const results = g.map((it, k) => answer(it, cmds[k] as TransferCmd));
            outcomes.push({ ok: true, created: n % 2 === 0, value: { results } });
          }
        }
        roundTrip(envelopes, outcomes);
      }));
  });

  it('refuses a reply decoded with other commands than it answers', () => {
    const cmds: Envelope[] = [{ tenant: 't', cmd: transfer('a1', 'a', 'b', 1n) }];
    const bytes = encodeReplies(cmds, [{ ok: true, created: true,
      value: transferView(cmds[0]?.cmd as TransferCmd, 1, 2) }]);
    expect(() => decodeReplies(bytes, [])).toThrow(RangeError);
    expect(() => decodeReplies(bytes, [...cmds, ...cmds])).toThrow(RangeError);
    expect(() => decodeReplies(bytes, [{ tenant: 't', cmd: { op: 'getAccount', id: 'a' } }]))
      .toThrow(RangeError);
    expect(() => decodeReplies(bytes.subarray(0, bytes.length - 1), cmds)).toThrow(RangeError);
    expect(() => encodeReplies(cmds, [])).toThrow(RangeError);
  });
});

function answerFor(shape: string, cmd: TransferCmd, time: number, sequence: number): Outcome {
  const view = transferView(cmd, time, sequence);
  switch (shape) {
    case 'created':
      return { ok: true, created: true, value: view };
    case 'replayed':
      return { ok: true, created: false, value: view };
    case 'voided':
      return { ok: true, created: false, value: { ...view, status: 'voided' } };
    case 'error':
      return { ok: false, error: errorRecord('insufficient_funds') };
    default:
      return { ok: true, created: false, value: { entries: [], next: null } };
  }
}
