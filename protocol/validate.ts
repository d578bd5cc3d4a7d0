// Turns a decoded request (JSON object from HTTP, msgpack map from WebSocket) into a typed
// command, or a precise error naming the field. Never throws, never trusts the input's shape.

import { errorRecord, type ErrorCode, type ErrorRecord } from './errors.js';
import {
  DecimalText,
  currencyExponent,
  isPlainDecimal,
  parseAmount,
  parseAmountMinor,
  type AmountInput,
} from './money.js';
import {
  MAX_BATCH,
  type Command,
  type CreateAccountCmd,
  type ListEntriesCmd,
  type Op,
  type PostCmd,
  type TransferBatchCmd,
  type TransferCmd,
} from './types.js';

export type ValidationResult = { ok: true; cmd: Command } | { ok: false; error: ErrorRecord };

export const ID_MAX_LENGTH = 64;
export const DESCRIPTION_MAX_CHARS = 512;
export const TIMEOUT_SECONDS_MAX = 30 * 24 * 60 * 60;
export const METADATA_MAX_BYTES = 4096;
export const METADATA_MAX_DEPTH = 32;
export const LIST_LIMIT_DEFAULT = 100;
export const LIST_LIMIT_MAX = 1000;

const ID = /^[A-Za-z0-9._:-]{1,64}$/;
const CURSOR = /^[0-9]{1,12}$/;
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;

const TRANSFER_FIELDS = [
  'id', 'fromAccountId', 'toAccountId', 'amount', 'amountMinor', 'currencyCode',
  'description', 'paymentTypeId', 'pending', 'timeoutSeconds',
] as const;

/** The fields each op accepts; anything else is refused by name. */
const FIELDS: Readonly<Record<Op, ReadonlySet<string>>> = {
  createAccount: new Set(['id', 'currencyCode', 'allowNegative', 'metadata']),
  transfer: new Set(TRANSFER_FIELDS),
  post: new Set(['id', 'amount', 'amountMinor', 'currencyCode']),
  void: new Set(['id']),
  transferBatch: new Set(['atomic', 'transactions']),
  getAccount: new Set(['id']),
  getTransaction: new Set(['id']),
  listEntries: new Set(['accountId', 'limit', 'after']),
};

/** A rejection on its way out; a class so no input value can be mistaken for one. */
class Invalid {
  constructor(readonly error: ErrorRecord) {}
}

type Fields = Record<string, unknown>;

/** Reads one request object; `item` is a batch item's index (-1: the request itself). */
class Reader {
  constructor(
    readonly fields: Fields,
    readonly item = -1,
  ) {}

  /** How messages name this object's fields: `transactions[3].` for a batch item. */
  get prefix(): string {
    return this.item < 0 ? '' : `transactions[${this.item}].`;
  }

  /** The field's value; JSON null counts as absent, as for an optional field left out. */
  get(name: string): unknown {
    if (!Object.prototype.hasOwnProperty.call(this.fields, name)) return undefined;
    const value = this.fields[name];
    return value === null ? undefined : value;
  }

  fail(code: ErrorCode, name: string, detail: string): Invalid {
    return new Invalid(errorRecord(code, `${this.prefix}${name}: ${detail}`));
  }

  wrongType(name: string, expected: string, value: unknown): Invalid {
    return this.fail('invalid_request', name, `expected ${expected}, got ${typeName(value)}`);
  }
}

function typeName(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof DecimalText) return 'number';
  if (typeof value === 'bigint') return 'integer';
  if (typeof value === 'object' && !isPlainObject(value)) return 'non-JSON object';
  return typeof value;
}

function isPlainObject(value: unknown): value is Fields {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** An integer in the safe range, given as a number or (from msgpack int64) a bigint. */
function safeInteger(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'bigint' && value >= BigInt(Number.MIN_SAFE_INTEGER)) {
    return value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : undefined;
  }
  return undefined;
}

function quoteKey(key: string): string {
  return JSON.stringify(key.length > 64 ? `${key.slice(0, 64)}...` : key);
}

function checkFields(r: Reader, allowed: ReadonlySet<string>): Invalid | undefined {
  // for-in, not Object.keys: no array per item of a batch. The fields are a plain object
  // (isPlainObject), so every key it yields is the object's own.
  for (const key in r.fields) {
    if (!allowed.has(key)) {
      return r.fail('invalid_request', quoteKey(key), 'unknown field');
    }
  }
  return undefined;
}

// ---- single fields -------------------------------------------------------------------

function readId(r: Reader, name: string): string | Invalid {
  const value = r.get(name);
  if (value === undefined) return r.fail('invalid_request', name, 'required');
  return checkId(r, name, value);
}

function checkId(r: Reader, name: string, value: unknown): string | Invalid {
  if (typeof value !== 'string') return r.wrongType(name, 'string', value);
  if (!ID.test(value)) {
    return r.fail('invalid_id', name, `must be 1-${ID_MAX_LENGTH} chars of [A-Za-z0-9._:-]`);
  }
  return value;
}

function readOptionalId(r: Reader, name: string): string | null | Invalid {
  const value = r.get(name);
  return value === undefined ? null : checkId(r, name, value);
}

function checkCurrency(r: Reader, name: string, value: unknown): string | Invalid {
  if (typeof value !== 'string') return r.wrongType(name, 'string', value);
  if (currencyExponent(value) === undefined) {
    const shown = quoteKey(value);
    return r.fail('invalid_currency', name, `${shown} is not an active ISO 4217 code`);
  }
  return value;
}

function readCurrency(r: Reader, name: string): string | Invalid {
  const value = r.get(name);
  if (value === undefined) return r.fail('invalid_request', name, 'required');
  return checkCurrency(r, name, value);
}

function readBoolean(r: Reader, name: string): boolean | Invalid {
  const value = r.get(name);
  if (value === undefined) return false;
  return typeof value === 'boolean' ? value : r.wrongType(name, 'boolean', value);
}

function readDescription(r: Reader, name: string): string | null | Invalid {
  const value = r.get(name);
  if (value === undefined) return null;
  if (typeof value !== 'string') return r.wrongType(name, 'string', value);
  // Counted in code points, so an emoji is one character as the client sees it.
  if (value.length > DESCRIPTION_MAX_CHARS && [...value].length > DESCRIPTION_MAX_CHARS) {
    return r.fail('invalid_request', name, `longer than ${DESCRIPTION_MAX_CHARS} characters`);
  }
  return value;
}

function readTimeout(r: Reader, name: string, pending: boolean): number | null | Invalid {
  const value = r.get(name);
  if (value === undefined) return null;
  const seconds = safeInteger(value);
  if (seconds === undefined) return r.wrongType(name, 'integer', value);
  if (seconds < 1 || seconds > TIMEOUT_SECONDS_MAX) {
    return r.fail('invalid_request', name, `must be 1..${TIMEOUT_SECONDS_MAX} seconds`);
  }
  if (!pending) return r.fail('invalid_request', name, 'only allowed with pending: true');
  return seconds;
}

// ---- money ---------------------------------------------------------------------------

function moneyFailure(r: Reader, name: string, code: ErrorCode, currency: string): Invalid {
  if (code === 'amount_overflow') return r.fail(code, name, 'exceeds 2^63-1 minor units');
  if (name === 'amountMinor') {
    return r.fail(code, name, 'must be a positive integer number of minor units');
  }
  const digits = currencyExponent(currency) ?? 0;
  const detail = `must be a positive plain decimal with at most ${digits} fractional digits`;
  return r.fail(code, name, `${detail} for ${currency}`);
}

function decimalInput(value: unknown): AmountInput | undefined {
  if (typeof value === 'string' || typeof value === 'number') return value;
  if (value instanceof DecimalText) return value;
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}

function readDecimal(r: Reader, value: unknown, currency: string): bigint | Invalid {
  const input = decimalInput(value);
  if (input === undefined) return r.wrongType('amount', 'decimal string or number', value);
  const minor = parseAmount(input, currency);
  return typeof minor === 'bigint' ? minor : moneyFailure(r, 'amount', minor, currency);
}

function readMinor(r: Reader, value: unknown): bigint | Invalid {
  const ok = typeof value === 'string' || typeof value === 'number' ||
    typeof value === 'bigint' || value instanceof DecimalText;
  if (!ok) return r.wrongType('amountMinor', 'integer or integer string', value);
  const minor = parseAmountMinor(value);
  return typeof minor === 'bigint' ? minor : moneyFailure(r, 'amountMinor', minor, '');
}

/** amount XOR amountMinor; `currency` null only for post, where amount then needs one. */
function readAmount(
  r: Reader,
  currency: string | null,
  required: boolean,
): bigint | null | Invalid {
  const amount = r.get('amount');
  const minor = r.get('amountMinor');
  if (amount !== undefined && minor !== undefined) {
    return r.fail('invalid_request', 'amount', 'give either amount or amountMinor, not both');
  }
  if (minor !== undefined) return readMinor(r, minor);
  if (amount === undefined) {
    return required ? r.fail('invalid_request', 'amount', 'required (or amountMinor)') : null;
  }
  if (currency !== null) return readDecimal(r, amount, currency);
  // Only post comes here: the shard converts the decimal with the transaction's currency.
  return null;
}

/** post's decimal amount without currencyCode: checked for shape here, converted by the shard. */
function readPostDecimal(r: Reader): string | null | Invalid {
  const amount = r.get('amount');
  if (amount === undefined || r.get('currencyCode') !== undefined) return null;
  const input = decimalInput(amount);
  if (input === undefined) return r.wrongType('amount', 'decimal string or number', amount);
  if (!isPlainDecimal(input)) return r.fail('invalid_amount', 'amount', 'not a plain decimal');
  return input instanceof DecimalText ? input.text : String(input);
}

// ---- metadata ------------------------------------------------------------------------

/** Canonical JSON writer with a size budget, so a huge value is refused early. */
class Canonical {
  private readonly parts: string[] = [];
  private chars = 0;

  push(text: string): boolean {
    this.parts.push(text);
    this.chars += text.length;
    // A UTF-16 code unit is at least one UTF-8 byte: past the budget in chars, past it in bytes.
    return this.chars <= METADATA_MAX_BYTES;
  }

  text(): string {
    return this.parts.join('');
  }
}

function writeScalar(value: unknown, out: Canonical): boolean | undefined {
  if (value === null) return out.push('null');
  if (typeof value === 'boolean') return out.push(value ? 'true' : 'false');
  if (typeof value === 'string') return out.push(JSON.stringify(value));
  if (typeof value === 'number') return Number.isFinite(value) && out.push(JSON.stringify(value));
  if (typeof value === 'bigint') return out.push(value.toString());
  // Numbers under an "amount" key keep their source text (json-body.ts); it is JSON already.
  if (value instanceof DecimalText) return JSON_NUMBER.test(value.text) && out.push(value.text);
  return undefined;
}

function writeCanonical(value: unknown, depth: number, out: Canonical): boolean {
  const scalar = writeScalar(value, out);
  if (scalar !== undefined) return scalar;
  if (depth > METADATA_MAX_DEPTH) return false;
  if (Array.isArray(value)) {
    if (!out.push('[')) return false;
    for (let i = 0; i < value.length; i++) {
      if (i > 0 && !out.push(',')) return false;
      if (!writeCanonical(value[i], depth + 1, out)) return false;
    }
    return out.push(']');
  }
  if (!isPlainObject(value)) return false;
  if (!out.push('{')) return false;
  const keys = Object.keys(value).sort();
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] ?? '';
    if (!out.push(`${i > 0 ? ',' : ''}${JSON.stringify(key)}:`)) return false;
    if (!writeCanonical(value[key], depth + 1, out)) return false;
  }
  return out.push('}');
}

/** Metadata as canonical JSON (keys sorted at every level), '{}' when absent. */
export function canonicalMetadata(value: unknown): string | undefined {
  if (value === undefined || value === null) return '{}';
  if (!isPlainObject(value)) return undefined;
  const out = new Canonical();
  if (!writeCanonical(value, 1, out)) return undefined;
  const text = out.text();
  return Buffer.byteLength(text, 'utf8') <= METADATA_MAX_BYTES ? text : undefined;
}

function readMetadata(r: Reader): string | Invalid {
  const value = r.get('metadata');
  const canonical = canonicalMetadata(value);
  if (canonical !== undefined) return canonical;
  const detail = `must be a JSON object of at most ${METADATA_MAX_BYTES} bytes, ` +
    `${METADATA_MAX_DEPTH} levels deep, with finite numbers`;
  return r.fail('invalid_metadata', 'metadata', detail);
}

// ---- commands ------------------------------------------------------------------------

function createAccount(r: Reader): CreateAccountCmd | Invalid {
  const id = readId(r, 'id');
  if (id instanceof Invalid) return id;
  const currencyCode = readCurrency(r, 'currencyCode');
  if (currencyCode instanceof Invalid) return currencyCode;
  const allowNegative = readBoolean(r, 'allowNegative');
  if (allowNegative instanceof Invalid) return allowNegative;
  const metadata = readMetadata(r);
  if (metadata instanceof Invalid) return metadata;
  return { op: 'createAccount', id, currencyCode, allowNegative, metadata };
}

function transfer(r: Reader): TransferCmd | Invalid {
  const id = readId(r, 'id');
  if (id instanceof Invalid) return id;
  const fromAccountId = readId(r, 'fromAccountId');
  if (fromAccountId instanceof Invalid) return fromAccountId;
  const toAccountId = readId(r, 'toAccountId');
  if (toAccountId instanceof Invalid) return toAccountId;
  const currencyCode = readCurrency(r, 'currencyCode');
  if (currencyCode instanceof Invalid) return currencyCode;
  const amountMinor = readAmount(r, currencyCode, true);
  if (amountMinor instanceof Invalid) return amountMinor;
  if (amountMinor === null) return r.fail('invalid_request', 'amount', 'required');
  const description = readDescription(r, 'description');
  if (description instanceof Invalid) return description;
  const paymentTypeId = readOptionalId(r, 'paymentTypeId');
  if (paymentTypeId instanceof Invalid) return paymentTypeId;
  const pending = readBoolean(r, 'pending');
  if (pending instanceof Invalid) return pending;
  const timeoutSeconds = readTimeout(r, 'timeoutSeconds', pending);
  if (timeoutSeconds instanceof Invalid) return timeoutSeconds;
  return {
    op: 'transfer', id, fromAccountId, toAccountId, amountMinor, currencyCode,
    description, paymentTypeId, pending, timeoutSeconds,
  };
}

function post(r: Reader): PostCmd | Invalid {
  const id = readId(r, 'id');
  if (id instanceof Invalid) return id;
  const currencyValue = r.get('currencyCode');
  const currency = currencyValue === undefined ? null
    : checkCurrency(r, 'currencyCode', currencyValue);
  if (currency instanceof Invalid) return currency;
  const amountMinor = readAmount(r, currency, false);
  if (amountMinor instanceof Invalid) return amountMinor;
  const amountDecimal = readPostDecimal(r);
  if (amountDecimal instanceof Invalid) return amountDecimal;
  return { op: 'post', id, amountMinor, amountDecimal, currencyCode: currency };
}

function batchItem(item: unknown, index: number): TransferCmd | Invalid {
  if (!isPlainObject(item)) {
    const detail = `expected object, got ${typeName(item)}`;
    return new Invalid(errorRecord('invalid_request', `transactions[${index}]: ${detail}`));
  }
  const r = new Reader(item, index);
  return checkFields(r, FIELDS.transfer) ?? transfer(r);
}

function transferBatch(r: Reader): TransferBatchCmd | Invalid {
  const atomic = readBoolean(r, 'atomic');
  if (atomic instanceof Invalid) return atomic;
  const items = r.get('transactions');
  if (items === undefined) return r.fail('invalid_request', 'transactions', 'required');
  if (!Array.isArray(items)) return r.wrongType('transactions', 'array', items);
  if (items.length > MAX_BATCH) {
    return r.fail('batch_too_large', 'transactions', `${items.length} items, at most ${MAX_BATCH}`);
  }
  if (items.length === 0) return r.fail('invalid_request', 'transactions', 'must not be empty');
  const transactions: TransferCmd[] = [];
  for (let i = 0; i < items.length; i++) {
    const cmd = batchItem(items[i], i);
    if (cmd instanceof Invalid) return cmd;
    transactions.push(cmd);
  }
  return { op: 'transferBatch', atomic, transactions };
}

function readLimit(r: Reader): number | Invalid {
  const value = r.get('limit');
  if (value === undefined) return LIST_LIMIT_DEFAULT;
  // Query strings give text: accept plain digits as well as a number.
  const limit = typeof value === 'string' && /^[0-9]{1,4}$/.test(value)
    ? Number(value) : safeInteger(value);
  if (limit === undefined) return r.wrongType('limit', 'integer', value);
  if (limit < 1 || limit > LIST_LIMIT_MAX) {
    return r.fail('invalid_request', 'limit', `must be 1..${LIST_LIMIT_MAX}`);
  }
  return limit;
}

function listEntries(r: Reader): ListEntriesCmd | Invalid {
  const accountId = readId(r, 'accountId');
  if (accountId instanceof Invalid) return accountId;
  const limit = readLimit(r);
  if (limit instanceof Invalid) return limit;
  const after = r.get('after');
  if (after === undefined) return { op: 'listEntries', accountId, limit, after: null };
  if (typeof after !== 'string') return r.wrongType('after', 'string or null', after);
  if (!CURSOR.test(after)) {
    return r.fail('invalid_cursor', 'after', 'not a cursor this server issued');
  }
  return { op: 'listEntries', accountId, limit, after };
}

function build(op: Op, r: Reader): Command | Invalid {
  switch (op) {
    case 'createAccount': return createAccount(r);
    case 'transfer': return transfer(r);
    case 'post': return post(r);
    case 'transferBatch': return transferBatch(r);
    case 'listEntries': return listEntries(r);
    case 'void':
    case 'getAccount':
    case 'getTransaction': {
      const id = readId(r, 'id');
      return id instanceof Invalid ? id : { op, id };
    }
  }
}

/**
 * Validates `input` for `op`. The gateway has already merged path and query parameters
 * ({id}; {accountId, limit, after}) and, for WebSocket, stripped `op` and `rid`.
 */
export function toCommand(op: Op, input: unknown): ValidationResult {
  if (typeof op !== 'string' || !Object.prototype.hasOwnProperty.call(FIELDS, op)) {
    const shown = typeof op === 'string' ? quoteKey(op) : typeName(op);
    return { ok: false, error: errorRecord('unknown_op', `op: ${shown} is unknown`) };
  }
  if (!isPlainObject(input)) {
    const detail = `body: expected object, got ${typeName(input)}`;
    return { ok: false, error: errorRecord('invalid_request', detail) };
  }
  const r = new Reader(input);
  const result = checkFields(r, FIELDS[op]) ?? build(op, r);
  return result instanceof Invalid ? { ok: false, error: result.error } : { ok: true, cmd: result };
}
