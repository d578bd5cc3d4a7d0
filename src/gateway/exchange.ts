// One HTTP request/response on uWebSockets.js: abort tracking, bounded body reading, corked
// JSON replies and per-request metrics. Never writes to an aborted or already answered res.

import type { Logger } from 'pino';
import type { HttpResponse } from 'uWebSockets.js';
import { errorRecord, statusOf, type ErrorCode } from '../../protocol/errors.js';
import type { Config } from '../config.js';
import type { Metrics, RouteLabel } from '../metrics.js';
import type { RateLimiter } from '../rate-limit.js';
import type { TenantRegistry } from '../tenants.js';
import type { LedgerHost, Traffic } from './traffic.js';

export const JSON_TYPE = 'application/json';

export interface GatewayContext {
  config: Config;
  tenants: TenantRegistry;
  ledger: LedgerHost;
  metrics: Metrics;
  limiter: RateLimiter;
  traffic: Traffic;
  log: Logger;
}

const REASONS: Readonly<Record<number, string>> = {
  200: 'OK',
  201: 'Created',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  426: 'Upgrade Required',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

const STATUS_LINES = new Map<number, string>(
  Object.entries(REASONS).map(([code, reason]) => [Number(code), `${code} ${reason}`]),
);

export function statusLine(status: number): string {
  return STATUS_LINES.get(status) ?? `${status} Status`;
}

export function errorJson(code: ErrorCode, message?: string): string {
  return JSON.stringify({ error: errorRecord(code, message) });
}

/** Reads `Authorization: Bearer <token>`; '' when absent or another scheme. */
export function bearerToken(header: string): string {
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m?.[1] ?? '';
}

export class Exchange {
  aborted = false;
  done = false;
  /** extra header pairs for the reply (e.g. Allow); rarely used, so allocated lazily */
  headers: string[] | null = null;
  private readonly t0 = performance.now();

  constructor(
    readonly res: HttpResponse,
    public route: RouteLabel,
    private readonly ctx: GatewayContext,
  ) {
    // Must be set before any asynchronous step: uWS frees an aborted response.
    res.onAborted(() => {
      this.aborted = true;
    });
  }

  /** True while a reply may still be written. */
  get open(): boolean {
    return !this.aborted && !this.done;
  }

  /**
   * Writes the one reply, corked. `close` ends the connection after it (the rest of an
   * unwanted body); so does shutting down, telling keep-alive clients to go elsewhere.
   */
  send(
    status: number,
    body: string,
    code: ErrorCode | null = null,
    type = JSON_TYPE,
    close = false,
  ): void {
    if (!this.open) return;
    this.done = true;
    const closeAfter = close || this.ctx.traffic.shuttingDown;
    const { res, headers } = this;
    res.cork(() => {
      res.writeStatus(statusLine(status)).writeHeader('content-type', type);
      if (headers !== null) {
        for (let i = 0; i + 1 < headers.length; i += 2) {
          res.writeHeader(headers[i] as string, headers[i + 1] as string);
        }
      }
      res.end(body, closeAfter);
    });
    this.ctx.metrics.observe(this.route, status, (performance.now() - this.t0) / 1000, code);
  }

  fail(code: ErrorCode, message?: string): void {
    this.send(statusOf(code), errorJson(code, message), code);
  }

  /** A reply after which the connection is closed (the rest of the body is unwanted). */
  failAndClose(code: ErrorCode, message?: string): void {
    this.send(statusOf(code), errorJson(code, message), code, JSON_TYPE, true);
  }
}

const INITIAL_BODY_BYTES = 16 * 1024;
const PREALLOC_BYTES_MAX = 256 * 1024;

/**
 * Collects the request body into one buffer, at most `maxBytes`: preallocated from
 * Content-Length when given (capped), grown by doubling past that and for chunked bodies.
 * An oversized body gets 413 and the connection closed, before or while it streams.
 * `onBody` runs once.
 */
export function readBody(
  x: Exchange,
  contentLength: string,
  maxBytes: number,
  onBody: (body: Uint8Array) => void,
): void {
  const declared = contentLength === '' ? -1 : Number(contentLength);
  if (declared > maxBytes) {
    x.failAndClose('payload_too_large', `body of ${declared} bytes exceeds ${maxBytes} bytes`);
    return;
  }
  // Preallocate what Content-Length announces, up to a cap: a client that announces 4 MiB
  // and then trickles bytes must not cost 4 MiB per connection up front.
  const initial = declared >= 0 ? Math.min(declared, PREALLOC_BYTES_MAX) : INITIAL_BODY_BYTES;
  let buf = Buffer.allocUnsafe(Math.min(initial, maxBytes));
  let size = 0;
  x.res.onData((chunk, isLast) => {
    if (!x.open) return;
    const n = chunk.byteLength;
    if (size + n > maxBytes) {
      x.failAndClose('payload_too_large', `body exceeds ${maxBytes} bytes`);
      return;
    }
    if (size + n > buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(maxBytes, Math.max(buf.length * 2, size + n)));
      buf.copy(grown, 0, 0, size);
      buf = grown;
    }
    // The chunk is only valid during this callback: copy it out now.
    buf.set(new Uint8Array(chunk), size);
    size += n;
    if (isLast) onBody(buf.subarray(0, size));
  });
}
