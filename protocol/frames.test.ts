// Tests for frames.ts: WebSocket frame decoding split at every byte, corrupted and
// random; reply encoding. Pure: no I/O, no timing assertions.

import fc from 'fast-check';
import { Packr, Unpackr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { errorRecord, isErrorCode } from './errors.js';
import { decodeFrame, encodeFrameError, encodeReply, type DecodedFrame } from './frames.js';
import type { TransactionView } from './types.js';

const packr = new Packr({ useRecords: false });
const reader = new Unpackr({ useRecords: false });
const MAX = 64 * 1024;

const request = {
  op: 'transfer', rid: 17, id: 'tx-1', fromAccountId: 'alice', toAccountId: 'bob',
  amount: '100.50', currencyCode: 'USD',
};

function code(frame: DecodedFrame): string {
  return frame.ok ? 'ok' : frame.error.code;
}

describe('decodeFrame', () => {
  it('splits op and rid from the fields', () => {
    const { op: _op, rid: _rid, ...fields } = request;
    expect(decodeFrame(packr.pack(request), MAX))
      .toEqual({ ok: true, rid: 17, op: 'transfer', input: fields });
  });

  it('accepts string rids and int64 values (amountMinor as bigint)', () => {
    const bytes = packr.pack({ op: 'post', rid: 'r-1', id: 't', amountMinor: 2n ** 63n - 1n });
    expect(decodeFrame(bytes, MAX)).toEqual({ ok: true, rid: 'r-1', op: 'post',
      input: { id: 't', amountMinor: 2n ** 63n - 1n } });
  });

  it('answers payload_too_large over the limit', () => {
    expect(code(decodeFrame(packr.pack(request), 10))).toBe('payload_too_large');
  });

  it('answers invalid_frame for bytes that are not one msgpack map', () => {
    const cases = [new Uint8Array(0), new Uint8Array([0xc1]), packr.pack([1, 2]), packr.pack('x'),
      packr.pack(null), Uint8Array.from([...packr.pack(request), 0x00]), packr.pack(new Date())];
    for (const bytes of cases) expect(code(decodeFrame(bytes, MAX))).toBe('invalid_frame');
  });

  it('answers invalid_frame for a missing or ill-typed rid, without echoing it', () => {
    for (const rid of [undefined, null, 1.5, '', 'x'.repeat(65), true, [], 2n ** 60n]) {
      const frame = decodeFrame(packr.pack({ ...request, rid }), MAX);
      expect(frame).toMatchObject({ ok: false, rid: null, error: { code: 'invalid_frame' } });
    }
  });

  it('answers invalid_frame for a non-string op, echoing the rid', () => {
    const frame = decodeFrame(packr.pack({ ...request, op: 5 }), MAX);
    expect(frame).toMatchObject({ ok: false, rid: 17, error: { code: 'invalid_frame' } });
  });

  it('answers unknown_op for an op outside the WebSocket set', () => {
    for (const op of ['nope', 'listEntries', '__proto__', 'x'.repeat(1000)]) {
      const frame = decodeFrame(packr.pack({ ...request, op }), MAX);
      expect(frame).toMatchObject({ ok: false, rid: 17, error: { code: 'unknown_op' } });
      expect(frame.ok ? '' : frame.error.message.length).toBeLessThan(100);
    }
  });

  it('never lets a __proto__ key become a prototype', () => {
    const bytes = packr.pack(JSON.parse('{"op":"void","rid":1,"id":"t","__proto__":{"x":1}}'));
    const frame = decodeFrame(bytes, MAX);
    expect(frame.ok && Object.getPrototypeOf(frame.input)).toBe(Object.prototype);
    expect(frame.ok && Object.keys(frame.input)).toEqual(['id', '__proto_']);
  });

  it('answers every strict prefix with an error and never throws (split at every byte)', () => {
    const bytes = packr.pack({ ...request, metadata: { a: [1, 2.5, 'ü', null], b: 2n ** 40n } });
    for (let cut = 0; cut < bytes.length; cut++) {
      const frame = decodeFrame(bytes.subarray(0, cut), MAX);
      expect(frame.ok, `prefix ${cut}`).toBe(false);
      expect(code(frame)).toBe('invalid_frame');
    }
    expect(decodeFrame(bytes, MAX).ok).toBe(true);
  });

  it('never throws on corrupted frames: each byte replaced by every value', () => {
    const bytes = packr.pack(request);
    for (let i = 0; i < bytes.length; i++) {
      for (let b = 0; b < 256; b++) {
        const copy = Uint8Array.from(bytes);
        copy[i] = b;
        const frame = decodeFrame(copy, MAX);
        if (!frame.ok) expect(['invalid_frame', 'unknown_op']).toContain(frame.error.code);
      }
    }
  });

  it('never throws on random bytes', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const frame = decodeFrame(bytes, MAX);
      expect(frame.ok || isErrorCode(frame.error.code)).toBe(true);
    }), { numRuns: 5000 });
  });

  it('never throws on hostile nesting', () => {
    const deep = new Uint8Array(60_000).fill(0x91); // 60k nested one-element arrays
    expect(code(decodeFrame(deep, MAX))).toBe('invalid_frame');
    const huge = Uint8Array.from([0xdd, 0xff, 0xff, 0xff, 0xff]); // array claiming 4G items
    expect(code(decodeFrame(huge, MAX))).toBe('invalid_frame');
  });
});

describe('encodeReply', () => {
  const tx: TransactionView = {
    id: 'tx-1', status: 'posted', fromAccountId: 'a', toAccountId: 'b', amountMinor: 5n,
    postedAmountMinor: 5n, currencyCode: 'JPY', description: null, paymentTypeId: null,
    createdAt: 0, sequence: 1, expiresAt: null,
  };

  it('encodes ok replies with the rendered result', () => {
    const bytes = encodeReply(9, { ok: true, created: true, value: tx });
    expect(reader.unpack(bytes)).toEqual({ rid: 9, ok: true, result: {
      id: 'tx-1', status: 'posted', fromAccountId: 'a', toAccountId: 'b', amount: '5',
      amountMinor: '5', currencyCode: 'JPY', createdAt: '1970-01-01T00:00:00.000Z', sequence: 1,
    } });
  });

  it('encodes error replies and frame errors', () => {
    const error = errorRecord('insufficient_funds');
    expect(reader.unpack(encodeReply('r', { ok: false, error })))
      .toEqual({ rid: 'r', ok: false, error });
    const frame = decodeFrame(new Uint8Array([0xc1]), MAX);
    if (frame.ok) throw new Error('expected an error');
    expect(reader.unpack(encodeFrameError(frame.rid, frame.error)))
      .toEqual({ rid: null, ok: false, error: frame.error });
  });

  it('keeps earlier replies intact while the shared Packr encodes more', () => {
    const first = encodeReply(1, { ok: false, error: errorRecord('overloaded') });
    const copy = Uint8Array.from(first);
    for (let i = 0; i < 2000; i++) encodeReply(i, { ok: true, created: false, value: tx });
    expect(Uint8Array.from(first)).toEqual(copy);
  });
});
