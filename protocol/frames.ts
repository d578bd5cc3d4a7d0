// WebSocket frame codec: binary msgpack maps `{op, rid, ...fields}` in, `{rid, ok, result |
// error}` out. Never throws on client bytes, never validates fields (validate.ts does).

import { Packr, Unpackr } from 'msgpackr';
import { encodeBatchReply } from './batch-frame.js';
import { errorRecord, type ErrorRecord } from './errors.js';
import type { Op, Outcome } from './types.js';
import { renderValue, type JsonObject } from './views.js';

/** The ops a WebSocket client may send (API.md); listEntries is HTTP only. */
export const WS_OPS: ReadonlySet<Op> = new Set<Op>([
  'createAccount', 'getAccount', 'transfer', 'transferBatch', 'post', 'void', 'getTransaction',
]);

export function isWsOp(op: string): op is Op {
  return (WS_OPS as ReadonlySet<string>).has(op);
}

export const RID_MAX_LENGTH = 64;

/** Request id chosen by the client: a safe integer or a string of 1-64 chars. */
export type Rid = number | string;

export type DecodedFrame =
  | { ok: true; rid: Rid; op: Op; input: Record<string, unknown> }
  | { ok: false; rid: Rid | null; error: ErrorRecord };

// Maps decode to plain objects (msgpackr renames a `__proto__` key, so no prototype can be
// set); int64 values decode as bigint, so amountMinor up to 2^63-1 arrives exactly.
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType: 'bigint' });
// One Packr for every reply: its buffer is reused, each result is a fresh subarray.
const packr = new Packr({ useRecords: false });

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function readRid(value: unknown): Rid | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === 'bigint') {
    const safe = value >= BigInt(Number.MIN_SAFE_INTEGER) &&
      value <= BigInt(Number.MAX_SAFE_INTEGER);
    return safe ? Number(value) : undefined;
  }
  if (typeof value === 'string') {
    return value.length >= 1 && value.length <= RID_MAX_LENGTH ? value : undefined;
  }
  return undefined;
}

function unpack(bytes: Uint8Array): { value: unknown } | undefined {
  try {
    return { value: unpackr.unpack(bytes) };
  } catch {
    // msgpackr throws plain Errors (and RangeError on absurd nesting) for any malformed
    // input; the answer to all of them is the same invalid_frame, so there is nothing to
    // keep.
    return undefined;
  }
}

function frameError(rid: Rid | null, detail: string): DecodedFrame {
  return { ok: false, rid, error: errorRecord('invalid_frame', detail) };
}

/**
 * Decodes one frame. Errors: payload_too_large (over maxBytes), invalid_frame (not one
 * msgpack map, bad rid or op type), unknown_op. `rid` is echoed once it has been read.
 */
export function decodeFrame(bytes: Uint8Array, maxBytes: number): DecodedFrame {
  if (bytes.byteLength > maxBytes) {
    const error = errorRecord('payload_too_large', `frame exceeds ${maxBytes} bytes`);
    return { ok: false, rid: null, error };
  }
  if (bytes.byteLength === 0) return frameError(null, 'frame is empty');
  const decoded = unpack(bytes);
  if (decoded === undefined) return frameError(null, 'frame is not valid msgpack');
  const map = decoded.value;
  if (!isPlainObject(map)) return frameError(null, 'frame is not a msgpack map');
  const rid = readRid(map.rid);
  if (rid === undefined) {
    return frameError(null, `rid: expected safe integer or 1-${RID_MAX_LENGTH} char string`);
  }
  const op = map.op;
  if (typeof op !== 'string') return frameError(rid, 'op: expected string');
  if (!isWsOp(op)) {
    const shown = JSON.stringify(op.length > 32 ? `${op.slice(0, 32)}...` : op);
    return { ok: false, rid, error: errorRecord('unknown_op', `op: ${shown} is unknown`) };
  }
  const input: Record<string, unknown> = {};
  for (const key of Object.keys(map)) {
    // msgpackr already renames a `__proto__` key; skipping it too keeps this loop from ever
    // calling the prototype setter, whatever the decoder does.
    if (key !== 'op' && key !== 'rid' && key !== '__proto__') input[key] = map[key];
  }
  return { ok: true, rid, op, input };
}

/** The reply map as a JSON-like value (also handy for tests and logging). */
export function replyValue(rid: Rid | null, outcome: Outcome): JsonObject {
  if (!outcome.ok) {
    const { code, message, retryable } = outcome.error;
    return { rid, ok: false, error: { code, message, retryable } };
  }
  return { rid, ok: true, result: renderValue(outcome.value) };
}

/**
 * Encodes a reply (a transferBatch answer by batch-frame.ts, anything else by msgpackr). The
 * bytes are a view into a shared buffer reused by the next call: send or copy them,
 * never transfer their ArrayBuffer to another thread.
 */
export function encodeReply(rid: Rid | null, outcome: Outcome): Uint8Array {
  return encodeBatchReply(rid, outcome) ?? packr.pack(replyValue(rid, outcome));
}

/** Encodes a frame-level error (one decodeFrame returned) as a reply. */
export function encodeFrameError(rid: Rid | null, error: ErrorRecord): Uint8Array {
  return encodeReply(rid, { ok: false, error });
}
