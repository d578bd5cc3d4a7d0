// Ledger events, schema version 1 (documented for consumers in protocol/EVENTS.md): how the
// Kafka relay packs committed journal entries into Kafka messages (envelopes), their key and
// headers, and a validating decoder. Pure: no I/O here.

import { pack, unpack } from 'msgpackr';
import type { JournalEntry } from './journal-entry.js';
import type { EntryKind } from './types.js';

/*
 * One journal entry becomes ONE event; consecutive events of one tenant (and shard) travel
 * together in one Kafka message, an envelope, keyed by the tenant (protocol/EVENTS.md):
 *
 *   kind          type                          notes
 *   account-open  account.created               creditAccountId: the new account
 *   post          transaction.posted            debit: payer, credit: payee
 *   pending       transaction.pending
 *   post-pending  transaction.posted_pending    amountMinor: the amount posted
 *   void          transaction.voided            amountMinor: the amount released
 *   reject        transaction.rejected          the REQUESTED accounts (they may not exist);
 *                                               no balance moved
 *
 * Why keyed by tenant, packed: Kafka orders messages per partition and the partition follows
 * the key. An account belongs to one tenant, so per-tenant order IS per-account order, with
 * one event per transfer instead of one per account (a transfer touches two). And kafkajs
 * spends ~12 us of CPU per message plus ~2.5 us per header whatever its size: packing up to
 * `maxEvents` events into a message divides that cost by as much. The price: a tenant's
 * stream is one partition, read by one consumer of a group (a tenant lives in one shard, one
 * writer thread, anyway).
 *
 * Envelope (JSON, UTF-8; or msgpack of the same object, `detail` as a map):
 *   type       'ledger.events'
 *   version    1 (a breaking change gets a new version and a new topic)
 *   tenant     every event's tenant, and the message key
 *   shard      every event's shard
 *   events     1 to maxEvents events of that tenant and shard, in increasing sequence (not
 *              contiguous: other tenants of the shard have the sequences in between)
 * Event:
 *   type             one of LEDGER_EVENT_TYPES
 *   eventId          "<shard>:<sequence>": the identity to deduplicate by
 *   tenant, shard, sequence
 *   time             ISO-8601 UTC of the entry's logical time (ms)
 *   transactionId    the transfer id; null for account.created
 *   debitAccountId   payer; null for account.created
 *   creditAccountId  payee; the new account for account.created
 *   amountMinor      integer in minor units, as a decimal STRING (no float ever holds money)
 *   currencyCode     ISO 4217
 *   detail           kind-specific object or null (the journal's canonical detail JSON):
 *                    account.created {allowNegative, metadata}; posted/pending {description,
 *                    paymentTypeId, timeoutSeconds}; voided {reason: 'client' | 'timeout'};
 *                    rejected {code, pending, description, paymentTypeId, timeoutSeconds};
 *                    posted_pending null
 * Headers (UTF-8): tenant, shard, first-sequence, last-sequence (of the events inside), so a
 * consumer can skip an envelope it has wholly applied without parsing it. Consumers ignore
 * unknown fields and headers.
 *
 * Delivery is at least once. An event's bytes are a pure function of its journal entry, so a
 * re-delivered event is identical to its first delivery; the envelope around it may differ
 * (where an envelope starts depends on where the relay's read started), so consumers dedupe
 * EVENTS by (shard, sequence), never messages. Per tenant, and so per account, first
 * deliveries arrive in increasing sequence; a re-delivery may repeat older events later, never
 * skip one: a consumer that applies only events above the last sequence it applied for the
 * tenant's shard is exactly-once. Per shard, sequences are 1, 2, 3, ... over all tenants, so a
 * consumer of the whole topic can prove it missed nothing.
 */

export const LEDGER_EVENTS_TYPE = 'ledger.events';
export const LEDGER_EVENTS_VERSION = 1;

export const LEDGER_EVENT_TYPES = [
  'account.created',
  'transaction.posted',
  'transaction.pending',
  'transaction.posted_pending',
  'transaction.voided',
  'transaction.rejected',
] as const;
export type LedgerEventType = (typeof LEDGER_EVENT_TYPES)[number];

export const EVENT_TYPE_OF_KIND: Readonly<Record<EntryKind, LedgerEventType>> = {
  'account-open': 'account.created',
  post: 'transaction.posted',
  pending: 'transaction.pending',
  'post-pending': 'transaction.posted_pending',
  void: 'transaction.voided',
  reject: 'transaction.rejected',
};

export type EventFormat = 'json' | 'msgpack';

export interface LedgerEvent {
  type: LedgerEventType;
  eventId: string;
  tenant: string;
  shard: number;
  sequence: number;
  time: string;
  transactionId: string | null;
  debitAccountId: string | null;
  creditAccountId: string;
  amountMinor: string;
  currencyCode: string;
  detail: Record<string, unknown> | null;
}

export interface LedgerEventEnvelope {
  type: typeof LEDGER_EVENTS_TYPE;
  version: typeof LEDGER_EVENTS_VERSION;
  tenant: string;
  shard: number;
  events: LedgerEvent[];
}

// A type, not an interface: Kafka clients take headers as a string-indexed record.
export type EventHeaders = {
  tenant: string;
  shard: string;
  'first-sequence': string;
  'last-sequence': string;
};

/** One Kafka message: key, value and headers exactly as produced. */
export interface EventMessage {
  key: string;
  value: Buffer;
  headers: EventHeaders;
  /** events inside (not sent: for the producer's counters) */
  events: number;
}

/** Bounds of one envelope; an event larger than maxBytes travels alone. */
export interface EnvelopeLimits {
  maxEvents: number;
  maxBytes: number;
}

export const DEFAULT_ENVELOPE_LIMITS: Readonly<EnvelopeLimits> = {
  maxEvents: 64,
  maxBytes: 64 * 1024,
};

/** The message key of a tenant's events. */
export function eventKey(tenant: string): string {
  return tenant;
}

export function eventId(shard: number, sequence: number): string {
  return `${shard}:${sequence}`;
}

/** The accounts an event concerns (for per-account consumers), without repeats. */
export function accountsOf(e: Pick<LedgerEvent, 'debitAccountId' | 'creditAccountId'>): string[] {
  const debit = e.debitAccountId;
  return debit === null || debit === e.creditAccountId ? [e.creditAccountId] :
    [debit, e.creditAccountId];
}

/** An envelope being filled: the encoded events of one (shard, tenant). */
interface OpenEnvelope {
  tenant: string;
  shard: number;
  json: string[];
  objects: LedgerEvent[];
  bytes: number;
  first: number;
  last: number;
}

/**
 * The messages of `entries` (grouped by shard, in sequence order within a shard, as the relay
 * reads them), encoded in `format`. For one (shard, tenant) the messages come out in sequence
 * order; Kafka keeps that order within the tenant's partition when they are sent in one batch.
 */
export function eventMessagesOf(
  entries: readonly JournalEntry[],
  format: EventFormat,
  limits: EnvelopeLimits = DEFAULT_ENVELOPE_LIMITS,
): EventMessage[] {
  const out: EventMessage[] = [];
  // At most one open envelope per (shard, tenant) of this batch: bounded by the batch.
  const open = new Map<string, OpenEnvelope>();
  // Entries of one group commit share their logical time: format it once per run of them.
  let time = Number.NaN;
  let iso = '';
  for (const e of entries) {
    const id = `${e.shard}\u0000${e.tenant}`;
    if (e.time !== time) {
      time = e.time;
      iso = new Date(time).toISOString();
    }
    const json = format === 'json' ? eventJson(e, iso) : '';
    const object = format === 'json' ? null : eventObject(e);
    // msgpack (optional, not the fast path) packs each event once more to learn its size.
    const bytes = object === null ? Buffer.byteLength(json) + 1 : pack(object).length;
    let env = open.get(id);
    const count = env === undefined ? 0 : env.json.length + env.objects.length;
    if (env !== undefined && (count >= limits.maxEvents || env.bytes + bytes > limits.maxBytes)) {
      out.push(closeEnvelope(env, format));
      env = undefined;
    }
    if (env === undefined) {
      env = { tenant: e.tenant, shard: e.shard, json: [], objects: [], bytes: ENVELOPE_BYTES,
        first: e.sequence, last: e.sequence };
      open.set(id, env);
    }
    if (object === null) env.json.push(json);
    else env.objects.push(object);
    env.bytes += bytes;
    env.last = e.sequence;
  }
  for (const env of open.values()) out.push(closeEnvelope(env, format));
  return out;
}

/** Room for the envelope's own fields when counting its size. */
const ENVELOPE_BYTES = 128;

function closeEnvelope(env: OpenEnvelope, format: EventFormat): EventMessage {
  const events = env.json.length + env.objects.length;
  const value = format === 'json'
    ? Buffer.from(`{"type":"${LEDGER_EVENTS_TYPE}","version":${LEDGER_EVENTS_VERSION},` +
      `"tenant":${JSON.stringify(env.tenant)},"shard":${env.shard},` +
      `"events":[${env.json.join(',')}]}`, 'utf8')
    : pack({ type: LEDGER_EVENTS_TYPE, version: LEDGER_EVENTS_VERSION, tenant: env.tenant,
      shard: env.shard, events: env.objects } satisfies LedgerEventEnvelope);
  env.json = [];
  env.objects = [];
  return {
    key: eventKey(env.tenant),
    value,
    headers: { tenant: env.tenant, shard: String(env.shard),
      'first-sequence': String(env.first), 'last-sequence': String(env.last) },
    events,
  };
}

/** One event as JSON: the same bytes as JSON.stringify(eventObject(e)), built directly. */
export function eventJson(e: JournalEntry, iso = new Date(e.time).toISOString()): string {
  const open = e.kind === 'account-open';
  // The detail is canonical JSON written by the state machine, but it comes from a database
  // row: parsed and re-serialized, so an edited row can never yield an unparsable message.
  const detail = e.detail === '' ? emptyDetailJson(e.kind) : JSON.stringify(parseDetail(e.detail));
  return `{"type":"${EVENT_TYPE_OF_KIND[e.kind]}","eventId":"${eventId(e.shard, e.sequence)}",` +
    `"tenant":${JSON.stringify(e.tenant)},"shard":${e.shard},"sequence":${e.sequence},` +
    `"time":"${iso}",` +
    `"transactionId":${open ? 'null' : JSON.stringify(e.id)},` +
    `"debitAccountId":${open ? 'null' : JSON.stringify(e.debitAccountId)},` +
    `"creditAccountId":${JSON.stringify(e.creditAccountId)},` +
    `"amountMinor":"${e.amountMinor}","currencyCode":${JSON.stringify(e.currencyCode)},` +
    `"detail":${detail}}`;
}

/** One event as an object (msgpack body, tests). */
export function eventObject(e: JournalEntry): LedgerEvent {
  const open = e.kind === 'account-open';
  return {
    type: EVENT_TYPE_OF_KIND[e.kind],
    eventId: eventId(e.shard, e.sequence),
    tenant: e.tenant,
    shard: e.shard,
    sequence: e.sequence,
    time: new Date(e.time).toISOString(),
    transactionId: open ? null : e.id,
    debitAccountId: open ? null : e.debitAccountId,
    creditAccountId: e.creditAccountId,
    amountMinor: String(e.amountMinor),
    currencyCode: e.currencyCode,
    detail: e.detail === '' ? JSON.parse(emptyDetailJson(e.kind)) as LedgerEvent['detail']
      : parseDetail(e.detail),
  };
}

/**
 * The detail of an entry that journals none: a plain transfer's journal row leaves it empty
 * (64 bytes less per row), but its event keeps the documented object (EVENTS.md).
 */
const PLAIN_TRANSFER_DETAIL = '{"description":null,"paymentTypeId":null,"timeoutSeconds":null}';

function emptyDetailJson(kind: EntryKind): string {
  return kind === 'post' || kind === 'pending' ? PLAIN_TRANSFER_DETAIL : 'null';
}

function parseDetail(detail: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(detail);
    return isRecord(value) ? value : { value };
  } catch {
    // Not JSON (never written by the state machine): carried verbatim rather than dropped.
    return { raw: detail };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export type EnvelopeDecodeResult =
  | { ok: true; envelope: LedgerEventEnvelope }
  | { ok: false; error: string };

/** Parses and validates a message value; never throws (consumers face arbitrary bytes). */
export function decodeLedgerEvents(value: Buffer, format: EventFormat): EnvelopeDecodeResult {
  let raw: unknown;
  try {
    raw = format === 'json' ? JSON.parse(value.toString('utf8')) : unpack(value);
  } catch (err) {
    return { ok: false, error: `not ${format}: ${err instanceof Error ? err.message : err}` };
  }
  if (!isRecord(raw)) return { ok: false, error: 'not an object' };
  const problem = checkEnvelope(raw);
  return problem === null ? { ok: true, envelope: raw as unknown as LedgerEventEnvelope } :
    { ok: false, error: problem };
}

function checkEnvelope(r: Record<string, unknown>): string | null {
  if (r.type !== LEDGER_EVENTS_TYPE) return 'not a ledger.events envelope';
  if (r.version !== LEDGER_EVENTS_VERSION) return `unsupported version ${String(r.version)}`;
  if (typeof r.tenant !== 'string' || !Number.isSafeInteger(r.shard)) {
    return 'envelope tenant must be a string and shard an integer';
  }
  if (!Array.isArray(r.events) || r.events.length === 0) return 'events must be a non-empty array';
  let last = 0;
  for (const [i, event] of (r.events as unknown[]).entries()) {
    const problem = isRecord(event) ? checkEvent(event) : 'not an object';
    if (problem !== null) return `event ${i}: ${problem}`;
    const e = event as unknown as LedgerEvent;
    if (e.tenant !== r.tenant || e.shard !== r.shard) return `event ${i}: not of the envelope`;
    if (e.sequence <= last) return `event ${i}: sequence ${e.sequence} after ${last}`;
    last = e.sequence;
  }
  return null;
}

const TYPES: readonly string[] = LEDGER_EVENT_TYPES;

function checkEvent(r: Record<string, unknown>): string | null {
  if (typeof r.type !== 'string' || !TYPES.includes(r.type)) return 'bad type';
  for (const f of ['tenant', 'time', 'creditAccountId', 'currencyCode', 'eventId']) {
    if (typeof r[f] !== 'string') return `${f} must be a string`;
  }
  if (!Number.isSafeInteger(r.shard) || !Number.isSafeInteger(r.sequence) ||
    (r.sequence as number) < 1) {
    return 'shard and sequence must be integers, sequence from 1';
  }
  if (typeof r.amountMinor !== 'string' || !/^-?\d{1,19}$/.test(r.amountMinor)) {
    return 'amountMinor must be a decimal integer string';
  }
  if (r.transactionId !== null && typeof r.transactionId !== 'string') return 'bad transactionId';
  if (r.debitAccountId !== null && typeof r.debitAccountId !== 'string') {
    return 'bad debitAccountId';
  }
  if (r.detail !== null && !isRecord(r.detail)) return 'detail must be an object or null';
  if (r.eventId !== eventId(r.shard as number, r.sequence as number)) {
    return 'eventId does not match shard and sequence';
  }
  return null;
}
