// Tests for the load generator's WebSocket frame helpers (bench/ws-frames.ts): its request
// frames are what the SDK would send (fresh ids, the given rid) and pass the gateway's own
// decoding; replies are paired and their error codes counted exactly as decoding them would.

import { Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { codesInFrame, FrameTemplate, replyHead } from '../bench/ws-frames.js';
import { errorRecord } from '../protocol/errors.js';
import { decodeFrame, encodeReply } from '../protocol/frames.js';
import type { Outcome, TransactionView } from '../protocol/types.js';
import { validate } from '../src/gateway/http.js';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

describe('FrameTemplate', () => {
  it('makes valid transferBatch frames with fresh ids and the rid asked for', () => {
    const t = new FrameTemplate('lt-', 7, 20);
    const seen = new Set<string>();
    for (const rid of [1, 200, 70_000, 2 ** 31 - 1]) {
      const bytes = t.frame(rid);
      const frame = unpackr.unpack(bytes) as { rid: number; op: string;
        transactions: Array<{ id: string; toAccountId: string }> };
      expect(frame.rid).toBe(rid);
      expect(frame.op).toBe('transferBatch');
      expect(frame.transactions.map((x) => x.toAccountId).slice(0, 8))
        .toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a0']);
      for (const x of frame.transactions) seen.add(x.id);
      const decoded = decodeFrame(bytes, 1 << 20);
      expect(decoded.ok).toBe(true);
      if (decoded.ok) expect(validate(decoded.op, decoded.input).ok).toBe(true);
    }
    expect(seen.size).toBe(80);
    expect([...seen]).toContain('lt-000000000z');
  });

  it('makes single transfer frames', () => {
    const frame = unpackr.unpack(new FrameTemplate('one-', 3, 1).frame(5)) as object;
    expect(frame).toMatchObject({ op: 'transfer', rid: 5, id: 'one-0000000000',
      toAccountId: 'a0' });
  });
});

describe('replies', () => {
  const view: TransactionView = { id: 'x', status: 'posted', fromAccountId: 'a',
    toAccountId: 'b', amountMinor: 1n, postedAmountMinor: 1n, currencyCode: 'USD',
    description: null, paymentTypeId: null, createdAt: 0, sequence: 1, expiresAt: null };
  const bytes = (rid: number, outcome: Outcome): Buffer => Buffer.from(encodeReply(rid, outcome));

  it('reads the rid and the failed items of a batch', () => {
    const batch: Outcome = { ok: true, created: true, value: { results: [
      { ok: true, created: true, value: view },
      { ok: false, error: errorRecord('account_not_found') },
      { ok: false, error: errorRecord('insufficient_funds') },
    ] } };
    for (const rid of [0, 127, 128, 300, 70_000, 3_000_000_000]) {
      const reply = bytes(rid, batch);
      expect(replyHead(reply)).toEqual({ rid, ok: true });
      expect(codesInFrame(reply)).toEqual(['account_not_found', 'insufficient_funds']);
    }
  });

  it('reads refusals and single results', () => {
    const refused = bytes(9, { ok: false, error: errorRecord('overloaded') });
    expect(replyHead(refused)).toEqual({ rid: 9, ok: false });
    expect(codesInFrame(refused)).toEqual(['overloaded']);
    const single = bytes(10, { ok: true, created: true, value: view });
    expect(replyHead(single)).toEqual({ rid: 10, ok: true });
    expect(codesInFrame(single)).toBeNull();
    expect(replyHead(Buffer.from(encodeReply(null, { ok: false,
      error: errorRecord('invalid_frame') })))).toBeNull();
  });
});
