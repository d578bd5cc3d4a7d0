// Compact answers to a batch of commands, for a sender that kept the commands it sent (a
// worker's host, a forwarding pod). Never for client bytes; trusts its input like thread-codec.
//
// Why: the answer to a transfer is mostly its own command echoed back. Shipping 8190 full
// views through msgpack and rebuilding them cost more CPU than applying the transfers. So a
// view that equals what its command implies travels as one kind byte plus its time and
// sequence; the receiver rebuilds it from the command. Everything else (errors, reads, views
// that differ from the command, such as a replay of a since-voided hold) travels as msgpack.
//
// Layout, little-endian:
//   u32 slots | u32 genericBytes | u8 kind[slots] | pad to 8 | f64 time[slots] |
//   f64 sequence[slots] | msgpack Outcome[] (the generic slots, in order)
// One slot per envelope; an answered transferBatch is followed by one slot per transaction.

import { decodeOutcomes, encodeOutcomes } from './thread-codec.js';
import type {
  BatchResultValue,
  Envelope,
  Outcome,
  TransactionView,
  TransferCmd,
} from './types.js';

const GENERIC = 0;
/** a view equal to transferView(cmd, time, sequence), answered with created: true */
const CREATED = 1;
/** the same, answered with created: false (an idempotent replay) */
const REPLAYED = 2;
/** { ok: true, created: true, value: { results } }; one slot per transaction follows */
const BATCH_CREATED = 3;
const BATCH_REPLAYED = 4;

const HEADER_BYTES = 8;

/** The view of a transfer as its creating command implies it (status from `pending`). */
export function transferView(cmd: TransferCmd, createdAt: number, sequence: number):
  TransactionView {
  const timeout = cmd.timeoutSeconds;
  return {
    id: cmd.id,
    status: cmd.pending ? 'pending' : 'posted',
    fromAccountId: cmd.fromAccountId,
    toAccountId: cmd.toAccountId,
    amountMinor: cmd.amountMinor,
    postedAmountMinor: cmd.pending ? 0n : cmd.amountMinor,
    currencyCode: cmd.currencyCode,
    description: cmd.description,
    paymentTypeId: cmd.paymentTypeId,
    createdAt,
    sequence,
    expiresAt: cmd.pending && timeout ? createdAt + timeout * 1000 : null,
  };
}

/** Whether `value` is exactly transferView(cmd, value.createdAt, value.sequence). */
function impliedBy(cmd: TransferCmd, value: unknown): value is TransactionView {
  const v = value as Partial<TransactionView>;
  if (typeof v.createdAt !== 'number' || typeof v.sequence !== 'number') return false;
  const timeout = cmd.timeoutSeconds;
  return v.id === cmd.id && v.fromAccountId === cmd.fromAccountId &&
    v.toAccountId === cmd.toAccountId && v.amountMinor === cmd.amountMinor &&
    v.currencyCode === cmd.currencyCode && v.description === cmd.description &&
    v.paymentTypeId === cmd.paymentTypeId &&
    v.status === (cmd.pending ? 'pending' : 'posted') &&
    v.postedAmountMinor === (cmd.pending ? 0n : cmd.amountMinor) &&
    v.expiresAt === (cmd.pending && timeout ? v.createdAt + timeout * 1000 : null);
}

/** Reused between calls: one batch at a time per thread, copied out before returning. */
class Columns {
  kind = new Uint8Array(1024);
  time = new Float64Array(1024);
  sequence = new Float64Array(1024);
  slots = 0;
  generic: Outcome[] = [];

  reset(): void {
    this.slots = 0;
    this.generic = [];
  }

  push(kind: number, time: number, sequence: number): void {
    if (this.slots === this.kind.length) this.grow();
    const s = this.slots++;
    this.kind[s] = kind;
    this.time[s] = time;
    this.sequence[s] = sequence;
  }

  pushGeneric(outcome: Outcome): void {
    this.generic.push(outcome);
    this.push(GENERIC, 0, 0);
  }

  pushTransfer(cmd: TransferCmd, outcome: Outcome): void {
    if (outcome.ok && impliedBy(cmd, outcome.value)) {
      const v = outcome.value;
      this.push(outcome.created ? CREATED : REPLAYED, v.createdAt, v.sequence);
    } else {
      this.pushGeneric(outcome);
    }
  }

  private grow(): void {
    const size = this.kind.length * 2;
    const kind = new Uint8Array(size);
    const time = new Float64Array(size);
    const sequence = new Float64Array(size);
    kind.set(this.kind);
    time.set(this.time);
    sequence.set(this.sequence);
    this.kind = kind;
    this.time = time;
    this.sequence = sequence;
  }
}

const columns = new Columns();

/** `outcomes[i]` answers `envelopes[i]`; the receiver decodes with the same envelopes. */
export function encodeReplies(
  envelopes: readonly Envelope[],
  outcomes: readonly Outcome[],
): Uint8Array<ArrayBuffer> {
  if (envelopes.length !== outcomes.length) {
    throw new RangeError('reply-codec: one outcome per envelope expected');
  }
  const c = columns;
  c.reset();
  for (let i = 0; i < envelopes.length; i++) {
    const cmd = (envelopes[i] as Envelope).cmd;
    const outcome = outcomes[i] as Outcome;
    if (cmd.op === 'transfer') c.pushTransfer(cmd, outcome);
    else if (cmd.op === 'transferBatch' && isBatchAnswer(cmd.transactions, outcome)) {
      c.push(outcome.created ? BATCH_CREATED : BATCH_REPLAYED, 0, 0);
      const results = outcome.value.results;
      for (let k = 0; k < results.length; k++) {
        c.pushTransfer(cmd.transactions[k] as TransferCmd, results[k] as Outcome);
      }
    } else c.pushGeneric(outcome);
  }
  return pack(c);
}

function isBatchAnswer(
  items: readonly TransferCmd[],
  outcome: Outcome,
): outcome is { ok: true; created: boolean; value: BatchResultValue } {
  if (!outcome.ok) return false;
  const results = (outcome.value as Partial<BatchResultValue>).results;
  return Array.isArray(results) && results.length === items.length &&
    Object.keys(outcome.value).length === 1;
}

function pack(c: Columns): Uint8Array<ArrayBuffer> {
  const generic = encodeOutcomes(c.generic);
  const kindBytes = align8(c.slots);
  const total = HEADER_BYTES + kindBytes + 16 * c.slots + generic.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, c.slots, true);
  view.setUint32(4, generic.length, true);
  out.set(c.kind.subarray(0, c.slots), HEADER_BYTES);
  const timeAt = HEADER_BYTES + kindBytes;
  new Float64Array(out.buffer, timeAt, c.slots).set(c.time.subarray(0, c.slots));
  new Float64Array(out.buffer, timeAt + 8 * c.slots, c.slots)
    .set(c.sequence.subarray(0, c.slots));
  out.set(generic, timeAt + 16 * c.slots);
  return out;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

/** Reads the slots back in the order encodeReplies wrote them. */
class SlotReader {
  private next = 0;
  private nextGeneric = 0;

  constructor(
    readonly kind: Uint8Array,
    readonly time: Float64Array,
    readonly sequence: Float64Array,
    readonly generic: Outcome[],
  ) {}

  peek(): number | undefined {
    return this.kind[this.next];
  }

  take(): number {
    if (this.next >= this.kind.length) throw new RangeError('reply-codec: too few slots');
    return this.next++;
  }

  finish(): void {
    if (this.next !== this.kind.length || this.nextGeneric !== this.generic.length) {
      throw new RangeError('reply-codec: the reply does not match the commands sent');
    }
  }

  outcome(cmd: TransferCmd | null): Outcome {
    const s = this.take();
    const kind = this.kind[s];
    if (kind === GENERIC) {
      const outcome = this.generic[this.nextGeneric++];
      if (outcome === undefined) throw new RangeError('reply-codec: too few generic outcomes');
      return outcome;
    }
    if (cmd === null || (kind !== CREATED && kind !== REPLAYED)) {
      throw new RangeError(`reply-codec: slot kind ${kind} where a transfer was sent`);
    }
    const value = transferView(cmd, this.time[s] as number, this.sequence[s] as number);
    return { ok: true, created: kind === CREATED, value };
  }
}

/** `envelopes`: the very commands the bytes answer, in the order they were sent. */
export function decodeReplies(bytes: Uint8Array, envelopes: readonly Envelope[]): Outcome[] {
  const r = reader(bytes);
  const out = new Array<Outcome>(envelopes.length);
  for (let i = 0; i < envelopes.length; i++) {
    const cmd = (envelopes[i] as Envelope).cmd;
    if (cmd.op === 'transfer') out[i] = r.outcome(cmd);
    else if (cmd.op !== 'transferBatch') out[i] = r.outcome(null);
    else out[i] = batchOutcome(r, cmd.transactions);
  }
  r.finish();
  return out;
}

function batchOutcome(r: SlotReader, items: readonly TransferCmd[]): Outcome {
  const kind = r.peek();
  if (kind === GENERIC) return r.outcome(null); // refused whole (batch_too_large, ...)
  if (kind !== BATCH_CREATED && kind !== BATCH_REPLAYED) {
    throw new RangeError(`reply-codec: slot kind ${kind} for a batch`);
  }
  r.take();
  const results = new Array<Outcome>(items.length);
  for (let k = 0; k < items.length; k++) results[k] = r.outcome(items[k] as TransferCmd);
  return { ok: true, created: kind === BATCH_CREATED, value: { results } };
}

function reader(bytes: Uint8Array): SlotReader {
  if (bytes.length < HEADER_BYTES) throw new RangeError('reply-codec: truncated reply');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const slots = view.getUint32(0, true);
  const genericBytes = view.getUint32(4, true);
  const timeAt = HEADER_BYTES + align8(slots);
  if (timeAt + 16 * slots + genericBytes !== bytes.length) {
    throw new RangeError('reply-codec: reply length does not match its header');
  }
  // Copied out: the time and sequence columns must be 8-byte aligned to be read as f64.
  const floats = new Float64Array(2 * slots);
  new Uint8Array(floats.buffer).set(bytes.subarray(timeAt, timeAt + 16 * slots));
  const generic = decodeOutcomes(bytes.subarray(timeAt + 16 * slots));
  return new SlotReader(bytes.subarray(HEADER_BYTES, HEADER_BYTES + slots),
    floats.subarray(0, slots), floats.subarray(slots), generic);
}
