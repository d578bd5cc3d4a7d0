// Exact money: ISO 4217 minor-unit exponents, decimal text <-> bigint minor units.
// Pure string and bigint arithmetic. Never let a float take part in an amount, never do I/O.

import type { ErrorCode } from './errors.js';

/** Largest amount or balance total the ledger holds, in minor units (int64 max). */
export const MAX_MINOR: bigint = 2n ** 63n - 1n;

/**
 * The exact source text of a JSON number (see json-body.ts). Carrying the text instead of
 * the parsed double is what lets `100.10` arrive as 10010 minor units and `0.1` stay `0.1`.
 */
export class DecimalText {
  constructor(readonly text: string) {}
}

/**
 * ISO 4217 List One, as published 2026-01-01: every active code whose minor unit is a
 * number. Codes with minor unit "N.A." (XAU, XAG, XPD, XPT, XBA-XBD, XDR, XSU, XUA, XTS,
 * XXX) are left out on purpose: they have no exact minor unit, so no amount in them can be
 * exact. Fund codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW) are included.
 */
const ACTIVE_EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  AED: 2, AFN: 2, ALL: 2, AMD: 2, AOA: 2, ARS: 2, AUD: 2, AWG: 2, AZN: 2,
  BAM: 2, BBD: 2, BDT: 2, BHD: 3, BIF: 0, BMD: 2, BND: 2, BOB: 2, BOV: 2, BRL: 2,
  BSD: 2, BTN: 2, BWP: 2, BYN: 2, BZD: 2,
  CAD: 2, CDF: 2, CHE: 2, CHF: 2, CHW: 2, CLF: 4, CLP: 0, CNY: 2, COP: 2, COU: 2,
  CRC: 2, CUP: 2, CVE: 2, CZK: 2,
  DJF: 0, DKK: 2, DOP: 2, DZD: 2,
  EGP: 2, ERN: 2, ETB: 2, EUR: 2,
  FJD: 2, FKP: 2,
  GBP: 2, GEL: 2, GHS: 2, GIP: 2, GMD: 2, GNF: 0, GTQ: 2, GYD: 2,
  HKD: 2, HNL: 2, HTG: 2, HUF: 2,
  IDR: 2, ILS: 2, INR: 2, IQD: 3, IRR: 2, ISK: 0,
  JMD: 2, JOD: 3, JPY: 0,
  KES: 2, KGS: 2, KHR: 2, KMF: 0, KPW: 2, KRW: 0, KWD: 3, KYD: 2, KZT: 2,
  LAK: 2, LBP: 2, LKR: 2, LRD: 2, LSL: 2, LYD: 3,
  MAD: 2, MDL: 2, MGA: 2, MKD: 2, MMK: 2, MNT: 2, MOP: 2, MRU: 2, MUR: 2, MVR: 2,
  MWK: 2, MXN: 2, MXV: 2, MYR: 2, MZN: 2,
  NAD: 2, NGN: 2, NIO: 2, NOK: 2, NPR: 2, NZD: 2,
  OMR: 3,
  PAB: 2, PEN: 2, PGK: 2, PHP: 2, PKR: 2, PLN: 2, PYG: 0,
  QAR: 2,
  RON: 2, RSD: 2, RUB: 2, RWF: 0,
  SAR: 2, SBD: 2, SCR: 2, SDG: 2, SEK: 2, SGD: 2, SHP: 2, SLE: 2, SOS: 2, SRD: 2,
  SSP: 2, STN: 2, SVC: 2, SYP: 2, SZL: 2,
  THB: 2, TJS: 2, TMT: 2, TND: 3, TOP: 2, TRY: 2, TTD: 2, TWD: 2, TZS: 2,
  UAH: 2, UGX: 0, USD: 2, USN: 2, UYI: 0, UYU: 2, UYW: 4, UZS: 2,
  VED: 2, VES: 2, VND: 0, VUV: 0,
  WST: 2,
  XAD: 2, XAF: 0, XCD: 2, XCG: 2, XOF: 0, XPF: 0,
  YER: 2,
  ZAR: 2, ZMW: 2, ZWG: 2,
});

/**
 * Codes withdrawn from List One in recent years. Never accepted for new accounts or
 * transfers, but an account opened before the withdrawal still has to render, so
 * formatAmount knows their exponents.
 */
const WITHDRAWN_EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  ANG: 2, CUC: 2, HRK: 2, SLL: 2, ZWL: 2, MRO: 2, STD: 2, VEF: 2, BYR: 0, LTL: 2, LVL: 2,
  EEK: 2,
});

/** The tables as Maps: looked up for every transfer, and never fooled by inherited keys. */
const ACTIVE = new Map(Object.entries(ACTIVE_EXPONENTS));
const WITHDRAWN = new Map(Object.entries(WITHDRAWN_EXPONENTS));

/** Minor-unit exponent of an active ISO 4217 code (case-sensitive), else undefined. */
export function currencyExponent(code: string): number | undefined {
  return ACTIVE.get(code);
}

/** Every active code, sorted; for docs and client enums. */
export function activeCurrencyCodes(): string[] {
  return Object.keys(ACTIVE_EXPONENTS).sort();
}

/** Input accepted where the API takes a decimal `amount`. */
export type AmountInput = string | number | DecimalText;
/** Input accepted where the API takes an integer `amountMinor`. */
export type AmountMinorInput = string | number | DecimalText | bigint;

// Plain decimal: digits, optionally a dot and at least one digit. No sign, no exponent,
// no whitespace, no leading or trailing dot.
const DECIMAL = /^([0-9]+)(?:\.([0-9]+))?$/;
const INTEGER = /^[0-9]+$/;
// Any integer part longer than this (after leading zeros) exceeds MAX_MINOR (19 digits).
const MAX_DIGITS = 19;

function textOf(input: AmountInput): string | undefined {
  if (input instanceof DecimalText) return input.text;
  if (typeof input === 'string') return input;
  if (typeof input === 'number' && Number.isFinite(input)) return String(input);
  return undefined;
}

/** Minor units from a string of digits, bounded: too many digits is overflow, 0 invalid. */
function minorFromDigits(digits: string): bigint | ErrorCode {
  if (digits.length <= 15) {
    // Fewer than 16 digits cannot overflow, and BigInt reads leading zeros as a number does.
    const value = BigInt(digits);
    return value === 0n ? 'invalid_amount' : value;
  }
  const trimmed = digits.replace(/^0+/, '');
  if (trimmed === '') return 'invalid_amount';
  if (trimmed.length > MAX_DIGITS) return 'amount_overflow';
  const value = BigInt(trimmed);
  return value > MAX_MINOR ? 'amount_overflow' : value;
}

/**
 * A positive decimal amount in `currency` to exact minor units. Exponent notation (`1e3`)
 * is rejected as invalid_amount even when it would be exact: money is written plainly.
 * More fractional digits than the currency has (even trailing zeros) is invalid_amount.
 */
export function parseAmount(input: AmountInput, currency: string): bigint | ErrorCode {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) return 'invalid_currency';
  const text = textOf(input);
  if (text === undefined) return 'invalid_amount';
  const match = DECIMAL.exec(text);
  if (match === null) return 'invalid_amount';
  const whole = match[1] ?? '';
  const fraction = match[2] ?? '';
  if (fraction.length > exponent) return 'invalid_amount';
  return minorFromDigits(whole + fraction.padEnd(exponent, '0'));
}

/** Whether the input is written as a plain decimal (digits, optional dot and digits). */
export function isPlainDecimal(input: AmountInput): boolean {
  const text = textOf(input);
  return text !== undefined && DECIMAL.test(text);
}

/** A positive integer count of minor units; strings must be plain digits. */
export function parseAmountMinor(input: AmountMinorInput): bigint | ErrorCode {
  if (typeof input === 'bigint') {
    if (input <= 0n) return 'invalid_amount';
    return input > MAX_MINOR ? 'amount_overflow' : input;
  }
  if (typeof input === 'number') {
    if (!Number.isInteger(input) || input <= 0) return 'invalid_amount';
    if (input >= 2 ** 63) return 'amount_overflow';
    // Above 2^53 a double no longer holds every integer: the client's digits are lost.
    return Number.isSafeInteger(input) ? BigInt(input) : 'invalid_amount';
  }
  const text = input instanceof DecimalText ? input.text : input;
  if (typeof text !== 'string' || !INTEGER.test(text)) return 'invalid_amount';
  return minorFromDigits(text);
}

function displayExponent(currency: string): number {
  const exponent = ACTIVE.get(currency) ?? WITHDRAWN.get(currency);
  if (exponent === undefined) {
    // Programmer error: a currency reached storage without passing validation.
    throw new RangeError(`formatAmount: unknown currency ${JSON.stringify(currency)}`);
  }
  return exponent;
}

/** Minor units as a decimal string with exactly the currency's fractional digits. */
export function formatAmount(minor: bigint, currency: string): string {
  const exponent = displayExponent(currency);
  const sign = minor < 0n ? '-' : '';
  const digits = (minor < 0n ? -minor : minor).toString();
  if (exponent === 0) return sign + digits;
  const padded = digits.padStart(exponent + 1, '0');
  const cut = padded.length - exponent;
  return `${sign}${padded.slice(0, cut)}.${padded.slice(cut)}`;
}
