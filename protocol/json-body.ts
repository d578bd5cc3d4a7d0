// Parses an HTTP JSON body with bounds (size, nesting) and keeps the exact source text of
// `amount` / `amountMinor` numbers. Never evaluates anything, never does I/O, never throws.

import v8 from 'node:v8';
import { errorRecord, type ErrorRecord } from './errors.js';
import { DecimalText } from './money.js';

export { DecimalText } from './money.js';

/** Deepest nesting of arrays and objects a body may have (the top level counts as 1). */
export const JSON_MAX_DEPTH = 32;

export type JsonBodyResult = { ok: true; value: unknown } | { ok: false; error: ErrorRecord };

interface ReviverContext {
  source?: string;
}

// Node 20 (V8 11.3) has JSON.parse source text access (TC39 "JSON.parse source text
// access") behind a flag; Node 22+ has it on by default. Setting a harmony flag after
// start-up is allowed for this one because it only changes how JSON.parse calls a reviver.
// If the flag ever stops working, the reviver falls back to String(value), which is exact
// for every amount a double can hold to the cent; we export the probe so tests can tell.
v8.setFlagsFromString('--harmony-json-parse-with-source');

function probeSourceText(): boolean {
  let seen = false;
  JSON.parse('1.50', (_key: string, value: unknown, context?: ReviverContext) => {
    seen = context?.source === '1.50';
    return value;
  });
  return seen;
}

/** Whether this runtime hands the reviver the number's source text. */
export const JSON_SOURCE_TEXT: boolean = probeSourceText();

const AMOUNT_KEYS = new Set(['amount', 'amountMinor']);
// An amount key followed by a number token. False positives only cost time.
const AMOUNT_NUMBER = /"amount(?:Minor)?"[ \t\n\r]*:[ \t\n\r]*[-0-9]/;

function keepAmountText(key: string, value: unknown, context?: ReviverContext): unknown {
  if (typeof value !== 'number' || !AMOUNT_KEYS.has(key)) return value;
  return new DecimalText(context?.source ?? String(value));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function decodeText(body: Uint8Array): string | undefined {
  try {
    return utf8.decode(body);
  } catch {
    // TextDecoder with fatal: true throws only on ill-formed UTF-8; that is the answer.
    return undefined;
  }
}

/** Upper bound on nesting: depth can never exceed the number of [ and { characters. */
function openerCount(text: string, limit: number): number {
  let count = 0;
  for (const opener of ['{', '[']) {
    let i = text.indexOf(opener);
    while (i !== -1 && count <= limit) {
      count++;
      i = text.indexOf(opener, i + 1);
    }
  }
  return count;
}

/**
 * Deepest nesting of [ and { outside strings. Runs before JSON.parse so that a hostile
 * body ("[[[[...") is refused in linear time and never reaches the recursive reviver.
 */
export function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x5b || c === 0x7b) {
      depth++;
      if (depth > deepest) deepest = depth;
      if (deepest > limit) return deepest;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    }
  }
  return deepest;
}

function utf8Length(text: string, maxBytes: number): number {
  // A UTF-16 code unit is at most 3 UTF-8 bytes, so short strings skip the count.
  return text.length * 3 <= maxBytes ? text.length : Buffer.byteLength(text, 'utf8');
}

/**
 * Parses a request body. Errors: payload_too_large (over maxBytes), invalid_json (not
 * UTF-8 or not JSON), invalid_request (nested deeper than JSON_MAX_DEPTH).
 */
export function parseJsonBody(body: Uint8Array | string, maxBytes: number): JsonBodyResult {
  const size = typeof body === 'string' ? utf8Length(body, maxBytes) : body.byteLength;
  if (size > maxBytes) {
    const message = `body exceeds ${maxBytes} bytes`;
    return { ok: false, error: errorRecord('payload_too_large', message) };
  }
  const text = typeof body === 'string' ? body : decodeText(body);
  if (text === undefined) {
    return { ok: false, error: errorRecord('invalid_json', 'body is not valid UTF-8') };
  }
  // Counting openers (native indexOf) settles nearly every body; only one with more
  // than JSON_MAX_DEPTH of them pays for the character-by-character scan.
  const tooDeep = openerCount(text, JSON_MAX_DEPTH) > JSON_MAX_DEPTH &&
    nestingDepth(text, JSON_MAX_DEPTH) > JSON_MAX_DEPTH;
  if (tooDeep) {
    const message = `body nests deeper than ${JSON_MAX_DEPTH} levels`;
    return { ok: false, error: errorRecord('invalid_request', message) };
  }
  try {
    // The reviver costs ~6x a plain parse, so it runs only when an amount key may hold a
    // number. A key may be spelled with \u escapes ("\u0061mount"): those bodies take it too.
    const value: unknown = AMOUNT_NUMBER.test(text) || text.includes('\\u')
      ? JSON.parse(text, keepAmountText)
      : JSON.parse(text);
    return { ok: true, value };
  } catch (error) {
    // JSON.parse throws SyntaxError for bad input; anything else is a bug worth seeing.
    if (!(error instanceof SyntaxError)) throw error;
    const message = `body is not valid JSON: ${error.message}`;
    return { ok: false, error: errorRecord('invalid_json', message) };
  }
}
