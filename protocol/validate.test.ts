// Tests for validate.ts: every field rule and error code, plus fuzzing that it never
// throws. Pure: no I/O, no timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isErrorCode, type ErrorCode } from './errors.js';
import { DecimalText, parseJsonBody } from './json-body.js';
import { MAX_MINOR } from './money.js';
import type { Op } from './types.js';
import { canonicalMetadata, toCommand, type ValidationResult } from './validate.js';

function ok(op: Op, input: unknown): ValidationResult & { ok: true } {
  const result = toCommand(op, input);
  if (!result.ok) throw new Error(`unexpected ${result.error.code}: ${result.error.message}`);
  return result;
}

function fails(op: Op, input: unknown, code: ErrorCode, field?: string): string {
  const result = toCommand(op, input);
  expect(result.ok ? 'ok' : result.error.code).toBe(code);
  const message = result.ok ? '' : result.error.message;
  if (field !== undefined) expect(message.startsWith(`${field}: `), message).toBe(true);
  return message;
}

const transfer = {
  id: 'tx-1', fromAccountId: 'alice', toAccountId: 'bob', amount: '100.50', currencyCode: 'USD',
};

describe('createAccount', () => {
  it('builds the command with defaults', () => {
    expect(ok('createAccount', { id: 'acct:1', currencyCode: 'EUR' }).cmd).toEqual({
      op: 'createAccount', id: 'acct:1', currencyCode: 'EUR', allowNegative: false, metadata: '{}',
    });
  });

  it('canonicalises metadata: keys sorted at every level', () => {
    const input = { id: 'a', currencyCode: 'USD', allowNegative: true,
      metadata: { b: 1, a: { d: [1, 'x', null, true], c: -0 } } };
    expect(ok('createAccount', input).cmd).toMatchObject({
      allowNegative: true, metadata: '{"a":{"c":0,"d":[1,"x",null,true]},"b":1}',
    });
  });

  it('keeps amount-like numbers in metadata exactly as written', () => {
    const body = parseJsonBody('{"id":"a","currencyCode":"USD","metadata":{"amount":1.50}}', 4096);
    expect(body.ok && toCommand('createAccount', body.value)).toMatchObject({
      ok: true, cmd: { metadata: '{"amount":1.50}' },
    });
  });

  it('refuses bad metadata with invalid_metadata', () => {
    const base = { id: 'a', currencyCode: 'USD' };
    for (const metadata of [[], 'x', 5, { a: Number.NaN }, { a: new Date(0) },
      { a: 'x'.repeat(4096) }, { d: new DecimalText('Infinity') }]) {
      fails('createAccount', { ...base, metadata }, 'invalid_metadata', 'metadata');
    }
    let deep: unknown = {};
    for (let i = 0; i < 40; i++) deep = { a: deep };
    fails('createAccount', { ...base, metadata: deep }, 'invalid_metadata', 'metadata');
  });

  it('measures the metadata limit in UTF-8 bytes of the canonical form', () => {
    const fits = { a: 'x'.repeat(4096 - 8) }; // {"a":"..."} is 8 bytes of syntax
    expect(canonicalMetadata(fits)).toHaveLength(4096);
    expect(canonicalMetadata({ a: 'x'.repeat(4096 - 7) })).toBeUndefined();
    expect(canonicalMetadata({ a: '€'.repeat(1400) })).toBeUndefined(); // 4200 bytes
  });

  it('names the field for each wrong input', () => {
    fails('createAccount', { currencyCode: 'USD' }, 'invalid_request', 'id');
    fails('createAccount', { id: 5, currencyCode: 'USD' }, 'invalid_request', 'id');
    fails('createAccount', { id: 'a b', currencyCode: 'USD' }, 'invalid_id', 'id');
    fails('createAccount', { id: 'x'.repeat(65), currencyCode: 'USD' }, 'invalid_id', 'id');
    fails('createAccount', { id: 'a' }, 'invalid_request', 'currencyCode');
    fails('createAccount', { id: 'a', currencyCode: 'usd' }, 'invalid_currency', 'currencyCode');
    fails('createAccount', { id: 'a', currencyCode: 1 }, 'invalid_request', 'currencyCode');
    const m = fails('createAccount', { id: 'a', currencyCode: 'USD', allowNegative: 'yes' },
      'invalid_request', 'allowNegative');
    expect(m).toContain('expected boolean, got string');
    const extra = { id: 'a', currencyCode: 'USD', extra: 1 };
    fails('createAccount', extra, 'invalid_request', '"extra"');
  });
});

describe('transfer', () => {
  it('builds the command from a decimal amount', () => {
    expect(ok('transfer', transfer).cmd).toEqual({
      op: 'transfer', id: 'tx-1', fromAccountId: 'alice', toAccountId: 'bob', amountMinor: 10050n,
      currencyCode: 'USD', description: null, paymentTypeId: null, pending: false,
      timeoutSeconds: null,
    });
  });

  it('accepts amountMinor as integer, string, DecimalText or bigint', () => {
    const { amount: _, ...rest } = transfer;
    for (const amountMinor of [10050, '10050', new DecimalText('10050'), 10050n]) {
      expect(ok('transfer', { ...rest, amountMinor }).cmd).toMatchObject({ amountMinor: 10050n });
    }
  });

  it('accepts a pending transfer with optional fields, null meaning absent', () => {
    const input = { ...transfer, description: 'rent ☕', paymentTypeId: 'sepa', pending: true,
      timeoutSeconds: 3600, amount: new DecimalText('1.5') };
    expect(ok('transfer', input).cmd).toMatchObject({
      amountMinor: 150n, description: 'rent ☕', paymentTypeId: 'sepa', pending: true,
      timeoutSeconds: 3600,
    });
    expect(ok('transfer', { ...transfer, description: null }).cmd)
      .toMatchObject({ description: null });
  });

  it('requires exactly one of amount and amountMinor', () => {
    fails('transfer', { ...transfer, amountMinor: 1 }, 'invalid_request', 'amount');
    const { amount: _, ...none } = transfer;
    fails('transfer', none, 'invalid_request', 'amount');
  });

  it('refuses bad amounts with the money error codes', () => {
    fails('transfer', { ...transfer, amount: '1.001' }, 'invalid_amount', 'amount');
    fails('transfer', { ...transfer, amount: '0' }, 'invalid_amount', 'amount');
    fails('transfer', { ...transfer, amount: -5 }, 'invalid_amount', 'amount');
    fails('transfer', { ...transfer, amount: '1e5' }, 'invalid_amount', 'amount');
    const big = '92233720368547758.08';
    fails('transfer', { ...transfer, amount: big }, 'amount_overflow', 'amount');
    const { amount: _, ...rest } = transfer;
    fails('transfer', { ...rest, amountMinor: '1.5' }, 'invalid_amount', 'amountMinor');
    fails('transfer', { ...rest, amountMinor: MAX_MINOR + 1n }, 'amount_overflow', 'amountMinor');
    fails('transfer', { ...transfer, amount: true }, 'invalid_request', 'amount');
    fails('transfer', { ...rest, amountMinor: [] }, 'invalid_request', 'amountMinor');
  });

  it('refuses bad optional fields by name', () => {
    fails('transfer', { ...transfer, description: 'x'.repeat(513) }, 'invalid_request',
      'description');
    expect(toCommand('transfer', { ...transfer, description: '😀'.repeat(512) }).ok).toBe(true);
    fails('transfer', { ...transfer, description: 5 }, 'invalid_request', 'description');
    fails('transfer', { ...transfer, paymentTypeId: 'a/b' }, 'invalid_id', 'paymentTypeId');
    fails('transfer', { ...transfer, pending: 1 }, 'invalid_request', 'pending');
    fails('transfer', { ...transfer, pending: true, timeoutSeconds: 0 }, 'invalid_request',
      'timeoutSeconds');
    fails('transfer', { ...transfer, pending: true, timeoutSeconds: 30 * 86400 + 1 },
      'invalid_request', 'timeoutSeconds');
    fails('transfer', { ...transfer, pending: true, timeoutSeconds: 1.5 }, 'invalid_request',
      'timeoutSeconds');
    fails('transfer', { ...transfer, timeoutSeconds: 60 }, 'invalid_request', 'timeoutSeconds');
    fails('transfer', { ...transfer, fromAccountId: '' }, 'invalid_id', 'fromAccountId');
    fails('transfer', { ...transfer, toAccountId: null }, 'invalid_request', 'toAccountId');
    fails('transfer', { ...transfer, currencyCode: 'XAU' }, 'invalid_currency', 'currencyCode');
  });

  it('refuses a non-object body', () => {
    for (const input of [null, [], 'x', 5, new Map(), new DecimalText('1')]) {
      fails('transfer', input, 'invalid_request', 'body');
    }
  });

  it('refuses an unknown field, including __proto__ from JSON', () => {
    const body = parseJsonBody(`{"__proto__":{"x":1},${JSON.stringify(transfer).slice(1)}`, 4096);
    expect(body.ok).toBe(true);
    if (body.ok) fails('transfer', body.value, 'invalid_request', '"__proto__"');
  });
});

describe('transferBatch', () => {
  it('validates every item', () => {
    const cmd = ok('transferBatch', { atomic: true,
      transactions: [transfer, { ...transfer, id: 'tx-2', amount: '1' }] }).cmd;
    expect(cmd).toMatchObject({ op: 'transferBatch', atomic: true });
    expect(cmd.op === 'transferBatch' && cmd.transactions.map((t) => t.amountMinor))
      .toEqual([10050n, 100n]);
  });

  it('names the failing item and field, with the precise code', () => {
    const items = [transfer, { ...transfer, amount: '1.234' }];
    fails('transferBatch', { transactions: items }, 'invalid_amount', 'transactions[1].amount');
    fails('transferBatch', { transactions: [transfer, 5] }, 'invalid_request', 'transactions[1]');
    fails('transferBatch', { transactions: [{ ...transfer, x: 1 }] }, 'invalid_request',
      'transactions[0]."x"');
  });

  it('holds 1..8190 items', () => {
    fails('transferBatch', { transactions: [] }, 'invalid_request', 'transactions');
    fails('transferBatch', {}, 'invalid_request', 'transactions');
    fails('transferBatch', { transactions: {} }, 'invalid_request', 'transactions');
    const many = Array.from({ length: 8191 }, (_, i) => ({ ...transfer, id: `t${i}` }));
    fails('transferBatch', { transactions: many }, 'batch_too_large', 'transactions');
    expect(toCommand('transferBatch', { transactions: many.slice(1) }).ok).toBe(true);
    fails('transferBatch', { transactions: [transfer], atomic: 'true' }, 'invalid_request',
      'atomic');
  });
});

describe('post, void, reads', () => {
  it('posts the whole hold, an amountMinor, or an amount in a named currency', () => {
    expect(ok('post', { id: 't' }).cmd).toEqual({
      op: 'post', id: 't', amountMinor: null, amountDecimal: null, currencyCode: null,
    });
    expect(ok('post', { id: 't', amountMinor: '250' }).cmd).toMatchObject({ amountMinor: 250n });
    expect(ok('post', { id: 't', amount: '2.5', currencyCode: 'KWD' }).cmd)
      .toMatchObject({ amountMinor: 2500n, currencyCode: 'KWD', amountDecimal: null });
  });

  it('leaves a decimal post amount without currency to the shard, checked for shape', () => {
    expect(ok('post', { id: 't', amount: '2.50' }).cmd)
      .toMatchObject({ amountMinor: null, amountDecimal: '2.50', currencyCode: null });
    fails('post', { id: 't', amount: '2,50' }, 'invalid_amount', 'amount');
    fails('post', { id: 't', amount: {} }, 'invalid_request', 'amount');
    fails('post', { id: 't', amount: '2.5', currencyCode: 'JPY' }, 'invalid_amount', 'amount');
    fails('post', { id: 't', amount: '1', amountMinor: 1 }, 'invalid_request', 'amount');
    fails('post', { id: 't', currencyCode: 'ABC' }, 'invalid_currency', 'currencyCode');
  });

  it('reads ids for void, getAccount, getTransaction', () => {
    for (const op of ['void', 'getAccount', 'getTransaction'] as const) {
      expect(ok(op, { id: 'x.y' }).cmd).toEqual({ op, id: 'x.y' });
      fails(op, { id: '' }, 'invalid_id', 'id');
      fails(op, { id: 'x', amount: 1 }, 'invalid_request', '"amount"');
    }
  });

  it('lists entries with a limit and a cursor', () => {
    expect(ok('listEntries', { accountId: 'a' }).cmd)
      .toEqual({ op: 'listEntries', accountId: 'a', limit: 100, after: null });
    expect(ok('listEntries', { accountId: 'a', limit: '1000', after: '123' }).cmd)
      .toEqual({ op: 'listEntries', accountId: 'a', limit: 1000, after: '123' });
    expect(ok('listEntries', { accountId: 'a', limit: 1, after: null }).cmd)
      .toMatchObject({ limit: 1 });
    for (const limit of [0, 1001, '0', '1001', '10.5', 'ten', -1, 1.5]) {
      fails('listEntries', { accountId: 'a', limit }, 'invalid_request', 'limit');
    }
    for (const after of ['', 'abc', '1234567890123', '-1']) {
      fails('listEntries', { accountId: 'a', after }, 'invalid_cursor', 'after');
    }
    fails('listEntries', { accountId: 'a', after: 5 }, 'invalid_request', 'after');
  });

  it('answers unknown_op for an op it does not know', () => {
    fails('nope' as Op, {}, 'unknown_op', 'op');
    fails(5 as unknown as Op, {}, 'unknown_op', 'op');
  });
});

describe('fuzz', () => {
  const ops: Op[] = ['createAccount', 'transfer', 'post', 'void', 'transferBatch', 'getAccount',
    'getTransaction', 'listEntries'];
  const fieldNames = ['id', 'fromAccountId', 'toAccountId', 'amount', 'amountMinor',
    'currencyCode', 'description', 'paymentTypeId', 'pending', 'timeoutSeconds', 'allowNegative',
    'metadata', 'atomic', 'transactions', 'accountId', 'limit', 'after'];
  const leaf = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.double(), fc.boolean(),
    fc.constant(null), fc.bigInt(), fc.constantFrom('USD', 'JPY', 'tx-1', '1.50', '100'),
    fc.string({ maxLength: 8 }).map((s) => new DecimalText(s)));
  const value = fc.letrec((tie) => ({
    any: fc.oneof({ depthSize: 'small' }, leaf, fc.array(tie('any'), { maxLength: 3 }),
      fc.dictionary(fc.constantFrom(...fieldNames, 'x', '__proto__'), tie('any'), { maxKeys: 5 })),
  })).any;
  const request = fc.dictionary(fc.constantFrom(...fieldNames), value, { maxKeys: 8 });

  it('never throws: always a command or a precise error naming a field', () => {
    fc.assert(fc.property(fc.constantFrom(...ops), fc.oneof(request, value), (op, input) => {
      const result = toCommand(op, input);
      if (result.ok) {
        expect(result.cmd.op).toBe(op);
      } else {
        expect(isErrorCode(result.error.code)).toBe(true);
        expect(result.error.message).toMatch(/^[^:]+: /);
      }
    }), { numRuns: 5000 });
  });

  it('never throws on whole random JSON documents', () => {
    fc.assert(fc.property(fc.constantFrom(...ops), fc.jsonValue(), (op, input) => {
      const result = toCommand(op, input);
      expect(result.ok || isErrorCode(result.error.code)).toBe(true);
    }), { numRuns: 3000 });
  });
});
