// Tests for json-body.ts: source-text amounts, size and depth bounds, fuzzing.
// Pure: no I/O, no timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecimalText,
  JSON_MAX_DEPTH,
  JSON_SOURCE_TEXT,
  nestingDepth,
  parseJsonBody,
} from './json-body.js';

const MAX = 1 << 20;

function value(body: Uint8Array | string): unknown {
  const result = parseJsonBody(body, MAX);
  if (!result.ok) throw new Error(`unexpected ${result.error.code}: ${result.error.message}`);
  return result.value;
}

describe('parseJsonBody', () => {
  it('has source text access on this runtime', () => {
    expect(JSON_SOURCE_TEXT).toBe(true);
  });

  it('keeps the exact source text of amount and amountMinor numbers', () => {
    const parsed = value('{"amount": 100.10, "amountMinor": 9223372036854775807, "n": 1.50}');
    expect(parsed).toEqual({
      amount: new DecimalText('100.10'),
      amountMinor: new DecimalText('9223372036854775807'),
      n: 1.5,
    });
  });

  it('does the same inside batch items and for \\u-escaped keys', () => {
    const body = '{"transactions":[{"amount":0.10},{"\\u0061mount":1.000000000000000001}]}';
    expect(value(body)).toEqual({ transactions: [
      { amount: new DecimalText('0.10') },
      { amount: new DecimalText('1.000000000000000001') },
    ] });
  });

  it('leaves string amounts and other numbers alone', () => {
    expect(value('{"amount":"1.50","limit":10}')).toEqual({ amount: '1.50', limit: 10 });
  });

  it('accepts UTF-8 bytes', () => {
    expect(value(new TextEncoder().encode('{"description":"café €"}')))
      .toEqual({ description: 'café €' });
  });

  it('answers invalid_json for bad syntax and bad UTF-8', () => {
    for (const body of ['', '{', '{"a":}', '{a:1}', "{'a':1}", '[1,]', 'NaN', '{"a":1}x']) {
      const result = parseJsonBody(body, MAX);
      expect(result.ok ? 'ok' : result.error.code, body).toBe('invalid_json');
    }
    const bad = parseJsonBody(new Uint8Array([0x7b, 0xff, 0x7d]), MAX);
    expect(bad.ok ? 'ok' : bad.error.code).toBe('invalid_json');
  });

  it('answers invalid_request past the nesting limit, and accepts the limit itself', () => {
    const nest = (n: number): string => '['.repeat(n) + ']'.repeat(n);
    expect(parseJsonBody(nest(JSON_MAX_DEPTH), MAX).ok).toBe(true);
    const deep = parseJsonBody(nest(JSON_MAX_DEPTH + 1), MAX);
    expect(deep.ok ? 'ok' : deep.error.code).toBe('invalid_request');
    const hostile = parseJsonBody('{"amount":'.repeat(100_000), MAX);
    expect(hostile.ok ? 'ok' : hostile.error.code).toBe('invalid_request');
  });

  it('counts brackets inside strings as text, not nesting', () => {
    expect(nestingDepth('{"a":"[[[[\\"[[["}', 10)).toBe(1);
    expect(value(`{"a":"${'['.repeat(100)}"}`)).toEqual({ a: '['.repeat(100) });
  });

  it('answers payload_too_large over the byte limit (strings counted in UTF-8)', () => {
    const tooBig = parseJsonBody(new Uint8Array(11), 10);
    expect(tooBig.ok ? 'ok' : tooBig.error.code).toBe('payload_too_large');
    const euros = parseJsonBody(`"${'€'.repeat(4)}"`, 12); // 14 bytes
    expect(euros.ok ? 'ok' : euros.error.code).toBe('payload_too_large');
    expect(parseJsonBody(`"${'€'.repeat(4)}"`, 14).ok).toBe(true);
  });

  it('keeps a __proto__ key as data, never as a prototype', () => {
    const parsed = value('{"__proto__":{"polluted":true},"amount":1}');
    expect(Object.getPrototypeOf(parsed)).toBe(Object.prototype);
    expect(Object.keys(parsed as object)).toEqual(['__proto__', 'amount']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('never throws on random text or bytes', () => {
    fc.assert(fc.property(fc.oneof(fc.json(), fc.string()), (text) => {
      const result = parseJsonBody(text, MAX);
      if (!result.ok) expect(['invalid_json', 'invalid_request']).toContain(result.error.code);
    }), { numRuns: 2000 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const result = parseJsonBody(bytes, MAX);
      if (!result.ok) expect(['invalid_json', 'invalid_request']).toContain(result.error.code);
    }), { numRuns: 2000 });
  });

  it('parses any JSON the same as JSON.parse, apart from amount numbers', () => {
    fc.assert(fc.property(fc.json({ depthSize: 'small' }), (text) => {
      const result = parseJsonBody(text, MAX);
      if (nestingDepth(text, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) return;
      expect(result.ok && result.value).toEqual(JSON.parse(text));
    }), { numRuns: 1000 });
  });
});
