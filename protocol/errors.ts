// The one error catalogue: every code a client, operator or auditor can see, with its HTTP
// status and whether a retry can succeed. Ordered by precedence (earlier wins when several
// apply). Docs and the SDK's enum are generated from this table; never throw these.

export interface ErrorSpec {
  readonly status: number;
  readonly retryable: boolean;
  readonly message: string;
}

export const ERRORS = {
  // 401 / 404: who are you, and is the thing yours
  unauthorized: { status: 401, retryable: false, message: 'missing or unknown bearer token' },
  route_not_found: { status: 404, retryable: false, message: 'no such route' },
  method_not_allowed: {
    status: 405,
    retryable: false,
    message: 'method not allowed on this route',
  },
  // 400: the request itself is malformed
  invalid_json: { status: 400, retryable: false, message: 'body is not valid JSON' },
  invalid_frame: { status: 400, retryable: false, message: 'frame is not a valid msgpack map' },
  unknown_op: { status: 400, retryable: false, message: 'unknown op' },
  invalid_request: {
    status: 400,
    retryable: false,
    message: 'request has a missing or ill-typed field',
  },
  invalid_id: {
    status: 400,
    retryable: false,
    message: 'id must be 1-64 chars of [A-Za-z0-9._:-]',
  },
  invalid_currency: { status: 400, retryable: false, message: 'unknown ISO 4217 currency code' },
  invalid_amount: {
    status: 400,
    retryable: false,
    message: 'amount is not a positive exact amount in this currency',
  },
  amount_overflow: { status: 400, retryable: false, message: 'amount exceeds 2^63-1 minor units' },
  invalid_metadata: {
    status: 400,
    retryable: false,
    message: 'metadata must be a JSON object of at most 4 KiB',
  },
  invalid_cursor: {
    status: 400,
    retryable: false,
    message: 'cursor is not one this server issued',
  },
  // 413: too large
  payload_too_large: { status: 413, retryable: false, message: 'request body too large' },
  batch_too_large: {
    status: 413,
    retryable: false,
    message: 'a batch holds at most 8190 transactions',
  },
  // 404: business lookups (never reveal another tenant's objects)
  account_not_found: { status: 404, retryable: false, message: 'account not found' },
  transaction_not_found: { status: 404, retryable: false, message: 'transaction not found' },
  pod_not_found: { status: 404, retryable: false, message: 'no such pod in this cluster' },
  // 409: conflicts with what exists
  account_exists: {
    status: 409,
    retryable: false,
    message: 'account exists with a different body',
  },
  conflict: {
    status: 409,
    retryable: false,
    message: 'transaction id reused with a different body',
  },
  tenant_exists: { status: 409, retryable: false, message: 'tenant exists' },
  // 422: business rules
  same_account: { status: 422, retryable: false, message: 'from and to accounts are the same' },
  currency_mismatch: {
    status: 422,
    retryable: false,
    message: 'currency differs from an account currency',
  },
  insufficient_funds: { status: 422, retryable: false, message: 'insufficient funds' },
  balance_overflow: {
    status: 422,
    retryable: false,
    message: 'a balance total would exceed 2^63-1 minor units',
  },
  transaction_not_pending: { status: 422, retryable: false, message: 'transaction is not pending' },
  pending_expired: {
    status: 422,
    retryable: false,
    message: 'pending transaction timed out and was voided',
  },
  amount_exceeds_pending: {
    status: 422,
    retryable: false,
    message: 'post amount exceeds the pending amount',
  },
  batch_failed: {
    status: 422,
    retryable: false,
    message: 'another transaction of the atomic batch failed',
  },
  // 429 / 503: try again
  rate_limited: { status: 429, retryable: true, message: 'tenant rate limit exceeded' },
  overloaded: { status: 503, retryable: true, message: 'shard queue is full' },
  storage_unavailable: {
    status: 503,
    retryable: true,
    message: 'journal storage unavailable; not applied',
  },
  shard_unavailable: { status: 503, retryable: true, message: 'shard is recovering or moving' },
  shutting_down: { status: 503, retryable: true, message: 'pod is shutting down' },
  internal_error: { status: 500, retryable: true, message: 'internal error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** Errors cross threads and the wire as plain records, never as Error instances. */
export interface ErrorRecord {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

export function errorRecord(code: ErrorCode, message?: string): ErrorRecord {
  const spec = ERRORS[code];
  return { code, message: message ?? spec.message, retryable: spec.retryable };
}

export function statusOf(code: ErrorCode): number {
  return ERRORS[code].status;
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERRORS, value);
}
