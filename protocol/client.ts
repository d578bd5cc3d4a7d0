// The TypeScript client SDK: HTTP over the global fetch, WebSocket over `ws` with msgpack
// frames paired by rid. No other I/O; never retries a write on its own (ids make retries safe).

import { Packr, Unpackr } from 'msgpackr';
import WebSocket from 'ws';
import type { ErrorCode } from './errors.js';

export interface HttpReply<T = unknown> {
  status: number;
  body: T;
}

export interface ApiError {
  code: ErrorCode;
  message: string;
  retryable: boolean;
}

/** Amounts go as decimal strings (`"10.50"`) or `amountMinor` (integer string). */
export interface TransferInput {
  id?: string;
  fromAccountId: string;
  toAccountId: string;
  amount?: string | number;
  amountMinor?: string | number;
  currencyCode: string;
  description?: string;
  paymentTypeId?: string;
  pending?: boolean;
  timeoutSeconds?: number;
}

export interface AccountInput {
  id: string;
  currencyCode: string;
  allowNegative?: boolean;
  metadata?: Record<string, unknown>;
}

export interface PostInput {
  amount?: string | number;
  amountMinor?: string | number;
  /** needed with a decimal `amount` (it fixes the minor-unit exponent) */
  currencyCode?: string;
}

export interface RequestOptions {
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

function path(segment: string): string {
  return encodeURIComponent(segment);
}

export class LedgerHttpClient {
  private readonly base: string;

  constructor(
    baseUrl: string,
    readonly token: string,
  ) {
    this.base = baseUrl.replace(/\/+$/, '');
  }

  createAccount(input: AccountInput): Promise<HttpReply> {
    return this.request('POST', '/api/v1/accounts', input);
  }

  getAccount(id: string): Promise<HttpReply> {
    return this.request('GET', `/api/v1/accounts/${path(id)}`);
  }

  listEntries(
    accountId: string,
    page: { limit?: number; after?: string } = {},
  ): Promise<HttpReply> {
    const q = new URLSearchParams();
    if (page.limit !== undefined) q.set('limit', String(page.limit));
    if (page.after !== undefined) q.set('after', page.after);
    const query = q.size > 0 ? `?${q.toString()}` : '';
    return this.request('GET', `/api/v1/accounts/${path(accountId)}/entries${query}`);
  }

  transfer(input: TransferInput, opts: RequestOptions = {}): Promise<HttpReply> {
    return this.request('POST', '/api/v1/transactions', input, opts);
  }

  transferBatch(input: { atomic?: boolean; transactions: TransferInput[] }): Promise<HttpReply> {
    return this.request('POST', '/api/v1/transactions/batch', input);
  }

  post(id: string, input: PostInput = {}): Promise<HttpReply> {
    return this.request('POST', `/api/v1/transactions/${path(id)}/post`, input);
  }

  void(id: string): Promise<HttpReply> {
    return this.request('POST', `/api/v1/transactions/${path(id)}/void`);
  }

  getTransaction(id: string): Promise<HttpReply> {
    return this.request('GET', `/api/v1/transactions/${path(id)}`);
  }

  /**
   * Any request. A string body is sent as is (for raw or malformed JSON); anything else
   * is JSON-encoded. The reply body is parsed JSON, or the text when it is not JSON.
   */
  async request(
    method: string,
    route: string,
    body?: unknown,
    opts: RequestOptions = {},
  ): Promise<HttpReply> {
    const headers: Record<string, string> = { ...opts.headers };
    if (this.token !== '') headers.authorization = `Bearer ${this.token}`;
    if (opts.idempotencyKey !== undefined) headers['idempotency-key'] = opts.idempotencyKey;
    let payload: string | undefined;
    if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = typeof body === 'string' ? body : JSON.stringify(body);
    }
    const res = await fetch(this.base + route, { method, headers, body: payload });
    const text = await res.text();
    return { status: res.status, body: parseMaybeJson(text) };
  }
}

function parseMaybeJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text; // not JSON (e.g. /metrics): hand back the text itself
  }
}

export type WsOp =
  | 'createAccount'
  | 'getAccount'
  | 'transfer'
  | 'transferBatch'
  | 'post'
  | 'void'
  | 'getTransaction';

export type WsReply =
  | { rid: number | string | null; ok: true; result: Record<string, unknown> }
  | { rid: number | string | null; ok: false; error: ApiError };

interface Waiter {
  resolve: (reply: WsReply) => void;
  reject: (err: Error) => void;
}

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

/** `http://host:port` or `ws://host:port/...` → the WebSocket endpoint URL. */
export function wsUrl(base: string): string {
  const url = new URL(base);
  if (url.protocol === 'http:') url.protocol = 'ws:';
  if (url.protocol === 'https:') url.protocol = 'wss:';
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/api/v1/ws';
  return url.toString();
}

/** Replies the server could not pair with a request (bad frames) are kept, boundedly. */
const UNPAIRED_MAX = 1024;

export class LedgerWsClient {
  private nextRid = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closedError: Error | null = null;
  /** replies whose rid matched no request of ours (e.g. answers to malformed frames) */
  readonly unpaired: WsReply[] = [];

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data: Buffer, isBinary: boolean) => this.onMessage(data, isBinary));
    socket.on('close', (code: number) => this.fail(new Error(`websocket closed (${code})`)));
    socket.on('error', (err: Error) => this.fail(err));
  }

  /**
   * Opens a socket. The token goes in the Authorization header, or in `?token=` with
   * `{ tokenIn: 'query' }` (for clients that cannot set headers).
   */
  static connect(
    url: string,
    token: string,
    opts: { tokenIn?: 'header' | 'query' } = {},
  ): Promise<LedgerWsClient> {
    const target = new URL(wsUrl(url));
    const headers: Record<string, string> = {};
    if (opts.tokenIn === 'query') target.searchParams.set('token', token);
    else headers.authorization = `Bearer ${token}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(target.toString(), { headers });
      socket.once('open', () => resolve(new LedgerWsClient(socket)));
      socket.once('unexpected-response', (_req, res) => {
        reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), {
          status: res.statusCode ?? 0,
        }));
        socket.terminate();
      });
      socket.once('error', reject);
    });
  }

  /** Requests waiting for their reply. */
  get inflight(): number {
    return this.waiting.size;
  }

  /** One request; resolves with its reply (ok or error), rejects only if the socket dies. */
  request(op: WsOp | string, fields: Record<string, unknown> = {}): Promise<WsReply> {
    if (this.closedError !== null) return Promise.reject(this.closedError);
    const rid = this.nextRid++;
    const frame = packr.pack({ ...fields, op, rid });
    return new Promise((resolve, reject) => {
      this.waiting.set(rid, { resolve, reject });
      this.socket.send(frame, { binary: true });
    });
  }

  /** Sends bytes as they are (fuzzing, protocol tests); any reply lands in `unpaired`. */
  sendRaw(bytes: Uint8Array | string, binary = true): void {
    this.socket.send(bytes, { binary });
  }

  /** Stops reading replies (the server then sees a slow reader); `resumeReading` undoes it. */
  pauseReading(): void {
    this.socket.pause();
  }

  resumeReading(): void {
    this.socket.resume();
  }

  close(): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.close(1000);
    });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) return;
    const reply = unpackr.unpack(data) as WsReply;
    const waiter = typeof reply.rid === 'number' ? this.waiting.get(reply.rid) : undefined;
    if (waiter === undefined || typeof reply.rid !== 'number') {
      if (this.unpaired.length < UNPAIRED_MAX) this.unpaired.push(reply);
      return;
    }
    this.waiting.delete(reply.rid);
    waiter.resolve(reply);
  }

  private fail(err: Error): void {
    this.closedError ??= err;
    for (const waiter of this.waiting.values()) waiter.reject(err);
    this.waiting.clear();
  }
}
