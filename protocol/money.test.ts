// Tests for money.ts: exponents, exact parsing, formatting, round trips and fuzzing.
// Pure: no I/O, no timing assertions.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  DecimalText,
  MAX_MINOR,
  activeCurrencyCodes,
  currencyExponent,
  formatAmount,
  isPlainDecimal,
  parseAmount,
  parseAmountMinor,
} from './money.js';

describe('currencyExponent', () => {
  it('knows the exponents of ISO 4217 List One', () => {
    expect(currencyExponent('USD')).toBe(2);
    expect(currencyExponent('EUR')).toBe(2);
    expect(currencyExponent('JPY')).toBe(0);
    expect(currencyExponent('KWD')).toBe(3);
    expect(currencyExponent('BHD')).toBe(3);
    expect(currencyExponent('CLF')).toBe(4);
    expect(currencyExponent('UYW')).toBe(4);
    expect(currencyExponent('XCG')).toBe(2);
    expect(currencyExponent('ZWG')).toBe(2);
  });

  it('refuses withdrawn, N.A. and malformed codes', () => {
    for (const code of ['ANG', 'HRK', 'SLL', 'XAU', 'XDR', 'XXX', 'usd', '', 'toString']) {
      expect(currencyExponent(code)).toBeUndefined();
    }
    expect(currencyExponent('__proto__')).toBeUndefined();
  });

  it('lists only three-letter codes with exponents 0..4', () => {
    const codes = activeCurrencyCodes();
    expect(codes.length).toBeGreaterThan(150);
    for (const code of codes) {
      expect(code).toMatch(/^[A-Z]{3}$/);
      expect([0, 2, 3, 4]).toContain(currencyExponent(code));
    }
  });
});

describe('parseAmount', () => {
  it('converts decimal text exactly', () => {
    expect(parseAmount('100.50', 'USD')).toBe(10050n);
    expect(parseAmount('100.5', 'USD')).toBe(10050n);
    expect(parseAmount('100', 'USD')).toBe(10000n);
    expect(parseAmount('0.01', 'USD')).toBe(1n);
    expect(parseAmount('5', 'JPY')).toBe(5n);
    expect(parseAmount('1.234', 'KWD')).toBe(1234n);
    expect(parseAmount('0.0001', 'CLF')).toBe(1n);
    expect(parseAmount(new DecimalText('100.10'), 'USD')).toBe(10010n);
    expect(parseAmount('007.50', 'USD')).toBe(750n);
  });

  it('converts JS numbers through their shortest text, never through float maths', () => {
    expect(parseAmount(100.1, 'USD')).toBe(10010n);
    expect(parseAmount(0.07, 'USD')).toBe(7n); // 0.07 * 100 would be 7.000000000000001
    expect(parseAmount(1.15, 'USD')).toBe(115n);
    expect(parseAmount(0.1 + 0.2, 'USD')).toBe('invalid_amount');
  });

  it('rejects zero, negatives and non-plain text as invalid_amount', () => {
    const bad = ['0', '0.00', '-1', '+1', ' 1', '1 ', '1.', '.5', '1e3', '1E3', '', 'abc',
      '1,00', '0x10', 'Infinity', 'NaN', '1.2.3', '١٢'];
    for (const text of bad) expect(parseAmount(text, 'USD'), text).toBe('invalid_amount');
    expect(parseAmount(-1, 'USD')).toBe('invalid_amount');
    expect(parseAmount(0, 'USD')).toBe('invalid_amount');
    expect(parseAmount(Number.NaN, 'USD')).toBe('invalid_amount');
    expect(parseAmount(Number.POSITIVE_INFINITY, 'USD')).toBe('invalid_amount');
    expect(parseAmount(1e21, 'JPY')).toBe('invalid_amount'); // String(1e21) is "1e+21"
    expect(parseAmount(new DecimalText('1e2'), 'USD')).toBe('invalid_amount');
  });

  it('rejects more fractional digits than the currency has, even zeros', () => {
    expect(parseAmount('1.001', 'USD')).toBe('invalid_amount');
    expect(parseAmount('1.500', 'USD')).toBe('invalid_amount');
    expect(parseAmount('1.0', 'JPY')).toBe('invalid_amount');
    expect(parseAmount('1.00001', 'CLF')).toBe('invalid_amount');
  });

  it('rejects more than 2^63-1 minor units as amount_overflow', () => {
    expect(parseAmount('92233720368547758.07', 'USD')).toBe(MAX_MINOR);
    expect(parseAmount('92233720368547758.08', 'USD')).toBe('amount_overflow');
    expect(parseAmount('9223372036854775807', 'JPY')).toBe(MAX_MINOR);
    expect(parseAmount('9223372036854775808', 'JPY')).toBe('amount_overflow');
    expect(parseAmount('1'.repeat(5000), 'JPY')).toBe('amount_overflow');
    expect(parseAmount(`${'0'.repeat(5000)}1`, 'JPY')).toBe(1n);
  });

  it('rejects an unknown currency as invalid_currency', () => {
    expect(parseAmount('1', 'XXX')).toBe('invalid_currency');
  });

  it('never throws and gives a bigint in range or an error code (random text)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.constantFrom('USD', 'JPY', 'KWD', 'CLF', 'X'),
        (text, currency) => {
          const result = parseAmount(text, currency);
          if (typeof result === 'bigint') {
            expect(result > 0n && result <= MAX_MINOR).toBe(true);
          } else {
            expect(['invalid_amount', 'amount_overflow', 'invalid_currency']).toContain(result);
          }
        }),
      { numRuns: 2000 },
    );
  });

  it('never throws on random numbers', () => {
    fc.assert(fc.property(fc.double(), (n) => {
      const result = parseAmount(n, 'USD');
      expect(typeof result === 'bigint' || typeof result === 'string').toBe(true);
    }), { numRuns: 2000 });
  });
});

describe('formatAmount', () => {
  it('writes exactly the currency digits', () => {
    expect(formatAmount(10050n, 'USD')).toBe('100.50');
    expect(formatAmount(5n, 'JPY')).toBe('5');
    expect(formatAmount(5n, 'USD')).toBe('0.05');
    expect(formatAmount(0n, 'USD')).toBe('0.00');
    expect(formatAmount(-105n, 'USD')).toBe('-1.05');
    expect(formatAmount(-5n, 'KWD')).toBe('-0.005');
    expect(formatAmount(1n, 'CLF')).toBe('0.0001');
    expect(formatAmount(MAX_MINOR, 'USD')).toBe('92233720368547758.07');
    expect(formatAmount(-MAX_MINOR, 'JPY')).toBe('-9223372036854775807');
  });

  it('still renders withdrawn currencies that existing accounts may hold', () => {
    expect(formatAmount(1050n, 'ANG')).toBe('10.50');
  });

  it('throws on a currency that never passed validation (a bug)', () => {
    expect(() => formatAmount(1n, 'NOPE')).toThrow(RangeError);
  });

  const currencies = fc.constantFrom(...activeCurrencyCodes());

  it('round-trips: parse(format(m)) == m for every positive minor amount', () => {
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: MAX_MINOR }), currencies, (minor, c) => {
      expect(parseAmount(formatAmount(minor, c), c)).toBe(minor);
    }), { numRuns: 3000 });
  });

  it('round-trips: format(parse(x)) is x normalised to the currency digits', () => {
    const decimal = fc.tuple(fc.stringMatching(/^[1-9][0-9]{0,14}$/),
      fc.stringMatching(/^[0-9]{0,4}$/), currencies);
    fc.assert(fc.property(decimal, ([whole, fraction, c]) => {
      const exponent = currencyExponent(c) ?? 0;
      const text = fraction === '' ? whole : `${whole}.${fraction}`;
      const parsed = parseAmount(text, c);
      if (fraction.length > exponent) {
        expect(parsed).toBe('invalid_amount');
        return;
      }
      const expected = exponent === 0 ? whole : `${whole}.${fraction.padEnd(exponent, '0')}`;
      expect(typeof parsed === 'bigint' && formatAmount(parsed, c)).toBe(expected);
    }), { numRuns: 3000 });
  });
});

describe('parseAmountMinor', () => {
  it('accepts positive integers, integer strings, DecimalText and bigint', () => {
    expect(parseAmountMinor(10050)).toBe(10050n);
    expect(parseAmountMinor('10050')).toBe(10050n);
    expect(parseAmountMinor(new DecimalText('9223372036854775807'))).toBe(MAX_MINOR);
    expect(parseAmountMinor(MAX_MINOR)).toBe(MAX_MINOR);
    expect(parseAmountMinor('0007')).toBe(7n);
  });

  it('rejects zero, negatives, fractions and non-digits as invalid_amount', () => {
    for (const v of [0, -1, 1.5, Number.NaN, '0', '-1', '1.0', '1e3', ' 1', '', 0n, -5n]) {
      expect(parseAmountMinor(v), String(v)).toBe('invalid_amount');
    }
    expect(parseAmountMinor(new DecimalText('1e3'))).toBe('invalid_amount');
    // a double past 2^53 has already lost the client's digits
    expect(parseAmountMinor(2 ** 53 + 2)).toBe('invalid_amount');
  });

  it('reads digit strings alike on both sides of the 15-digit fast path', () => {
    for (const n of [14, 15, 16, 17]) {
      expect(parseAmountMinor('0'.repeat(n)), `${n} zeros`).toBe('invalid_amount');
      expect(parseAmountMinor(`${'0'.repeat(n - 1)}7`)).toBe(7n);
      expect(parseAmountMinor('9'.repeat(n))).toBe(10n ** BigInt(n) - 1n);
    }
    expect(parseAmount('0.00', 'USD')).toBe('invalid_amount');
    expect(parseAmount('0000000000000.01', 'USD')).toBe(1n); // 15 digits once scaled
    expect(parseAmount('00000000000000.01', 'USD')).toBe(1n); // 16
  });

  it('rejects more than 2^63-1 as amount_overflow', () => {
    expect(parseAmountMinor('9223372036854775808')).toBe('amount_overflow');
    expect(parseAmountMinor(MAX_MINOR + 1n)).toBe('amount_overflow');
    expect(parseAmountMinor(2 ** 63)).toBe('amount_overflow');
    expect(parseAmountMinor('9'.repeat(100))).toBe('amount_overflow');
  });

  it('never throws on random strings', () => {
    fc.assert(fc.property(fc.string(), (s) => {
      const r = parseAmountMinor(s);
      expect(typeof r === 'bigint' || r === 'invalid_amount' || r === 'amount_overflow')
        .toBe(true);
    }), { numRuns: 2000 });
  });
});

describe('isPlainDecimal', () => {
  it('tells plain decimals from everything else', () => {
    expect(isPlainDecimal('1.50')).toBe(true);
    expect(isPlainDecimal(new DecimalText('2'))).toBe(true);
    expect(isPlainDecimal('1e2')).toBe(false);
    expect(isPlainDecimal(Number.NaN)).toBe(false);
  });
});
