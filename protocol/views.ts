// Renders results to the public JSON shapes of API.md (HTTP bodies, WebSocket results).
// Output holds only JSON values: money as decimal and minor-unit strings, never a bigint.

import { ERRORS, type ErrorRecord } from './errors.js';
import { formatAmount } from './money.js';
import type {
  AccountEntryView,
  AccountView,
  BatchResultValue,
  EntriesPage,
  Outcome,
  TransactionView,
  Value,
} from './types.js';

export type JsonValue = null | boolean | number | string | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

let lastMs = Number.NaN;
let lastIso = '';

/**
 * Logical ms since the Unix epoch as ISO-8601 UTC (`2024-05-01T12:00:00.000Z`). Remembers its
 * last answer: the replies of one worker task (a batch's items, or the single payments of many
 * connections) share one logical time, so this makes one Date and one string per task, not
 * one per reply (1.1 us each on the gateway thread, which HTTP single payments are bound by).
 */
export function isoTime(ms: number): string {
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

export function renderError(error: ErrorRecord): JsonObject {
  return { error: { code: error.code, message: error.message, retryable: error.retryable } };
}

export function renderAccount(a: AccountView): JsonObject {
  // Stored metadata is canonical JSON written by validate.ts; parsing it back is exact for
  // everything but integers past 2^53, which JSON clients cannot hold either.
  const metadata: unknown = JSON.parse(a.metadata);
  return {
    id: a.id,
    currencyCode: a.currencyCode,
    allowNegative: a.allowNegative,
    balance: formatAmount(a.balanceMinor, a.currencyCode),
    balanceMinor: a.balanceMinor.toString(),
    postedDebits: a.postedDebits.toString(),
    postedCredits: a.postedCredits.toString(),
    pendingDebits: a.pendingDebits.toString(),
    pendingCredits: a.pendingCredits.toString(),
    metadata: metadata as JsonObject,
    createdAt: isoTime(a.createdAt),
  };
}

/**
 * postedAmount / postedAmountMinor appear only when they say something `amount` does not:
 * a pending transfer posted for less than its hold. description, paymentTypeId and
 * expiresAt appear only when set.
 */
export function renderTransaction(t: TransactionView): JsonObject {
  const body: JsonObject = {
    id: t.id,
    status: t.status,
    fromAccountId: t.fromAccountId,
    toAccountId: t.toAccountId,
    amount: formatAmount(t.amountMinor, t.currencyCode),
    amountMinor: t.amountMinor.toString(),
  };
  if (t.status === 'posted' && t.postedAmountMinor !== t.amountMinor) {
    body.postedAmount = formatAmount(t.postedAmountMinor, t.currencyCode);
    body.postedAmountMinor = t.postedAmountMinor.toString();
  }
  body.currencyCode = t.currencyCode;
  if (t.description !== null) body.description = t.description;
  if (t.paymentTypeId !== null) body.paymentTypeId = t.paymentTypeId;
  body.createdAt = isoTime(t.createdAt);
  body.sequence = t.sequence;
  if (t.expiresAt !== null) body.expiresAt = isoTime(t.expiresAt);
  return body;
}

/**
 * Entries carry no currency of their own (EntriesPage does not name the account's), so
 * `amount` is added only when the caller passes the account's currency.
 */
export function renderEntry(e: AccountEntryView, currencyCode?: string): JsonObject {
  const body: JsonObject = {
    sequence: e.sequence,
    transactionId: e.transactionId,
    kind: e.kind,
    direction: e.direction,
  };
  if (currencyCode !== undefined) body.amount = formatAmount(e.amountMinor, currencyCode);
  body.amountMinor = e.amountMinor.toString();
  body.createdAt = isoTime(e.createdAt);
  return body;
}

export function renderEntriesPage(page: EntriesPage, currencyCode?: string): JsonObject {
  const currency = currencyCode ?? page.currencyCode;
  return { entries: page.entries.map((e) => renderEntry(e, currency)), next: page.next };
}

/** One batch item: the transaction, or {"error": {...}}. */
export function renderBatchItem(outcome: Outcome): JsonObject {
  if (!outcome.ok) return renderError(outcome.error);
  const v = outcome.value;
  return 'id' in v && 'status' in v ? renderTransaction(v) : renderValue(v);
}

export function renderBatch(batch: BatchResultValue): JsonObject {
  return { results: batch.results.map((o) => renderBatchItem(o)) };
}

/** Any result value in its public shape; used for HTTP bodies and WebSocket results. */
export function renderValue(value: Value): JsonObject {
  if ('results' in value) return renderBatch(value);
  if ('entries' in value) return renderEntriesPage(value);
  if ('balanceMinor' in value) return renderAccount(value);
  return renderTransaction(value);
}

export interface HttpReply {
  status: number;
  body: JsonObject;
}

/**
 * The HTTP status and body of an outcome: the error's catalogue status; 201 when this call
 * applied a write (and always for a batch, as API.md specifies); 200 otherwise.
 */
export function outcomeBody(outcome: Outcome): HttpReply {
  if (!outcome.ok) {
    return { status: ERRORS[outcome.error.code].status, body: renderError(outcome.error) };
  }
  const created = outcome.created || 'results' in outcome.value;
  return { status: created ? 201 : 200, body: renderValue(outcome.value) };
}
