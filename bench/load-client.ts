// Load generator, run as its own process (bench/http.ts spawns it): single payments over HTTP
// keep-alive, HTTP batches, or WebSocket transferBatch frames; closed loop or open loop at a
// fixed rate. Latency runs from each request's intended send time, so a stalled server cannot
// hide its queue (no coordinated omission). Prints one JSON report on stdout; asserts nothing.

import net from 'node:net';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { wsUrl } from '../protocol/client.js';
import { statusOf, type ErrorCode } from '../protocol/errors.js';
import { LatencyHistogram, type LatencySummaryMs } from './latency.js';
import { WINDOW_EDGES } from './load-window.js';
import { codesInFrame, FrameTemplate, replyHead } from './ws-frames.js';

export type LoadMode = 'http' | 'http-batch' | 'ws';

export interface LoadOptions {
  url: string;
  /** one bearer token per tenant; connection c uses tokens[c % tokens.length] */
  tokens: string[];
  mode: LoadMode;
  /** TCP connections (HTTP) or sockets (WS) */
  connections: number;
  /** requests in flight per WS socket; HTTP is always 1 (see HttpTransport) */
  inflight: number;
  /** payments per request (http-batch, ws) */
  batch: number;
  /** requests per second for the open loop; 0 runs the closed loop */
  rate: number;
  seconds: number;
  warmupSeconds: number;
  /** payments go from `fund` (allowNegative) to a0..a{accounts-1} of the same tenant */
  accounts: number;
  /** prefix of every payment id of this process: ids never repeat across phases */
  tag: string;
  drainSeconds: number;
}

export interface LoadReport {
  options: Omit<LoadOptions, 'tokens' | 'url'>;
  /** requests whose intended send time fell inside the measured window */
  requests: number;
  requestsOk: number;
  payments: number;
  elapsedSeconds: number;
  requestsPerSec: number;
  paymentsPerSec: number;
  /** from intended send time to the complete reply */
  latencyMs: LatencySummaryMs;
  /** how late the generator itself sent requests (open loop: its own share of latency) */
  sendLagMs: LatencySummaryMs;
  backlogMax: number;
  errors: Record<string, number>;
  statuses: Record<string, number>;
  /** the generator's own CPU use while it ran the load, in cores (1.0 = one core busy) */
  clientCpuCores: number;
  /** all CPU seconds of the generator process, start-up and connecting included */
  clientCpuSecondsTotal: number;
  /** the generator's CPU seconds inside the measured window (see WINDOW_EDGES) */
  clientCpuSecondsWindow: number;
}

/** One finished request: HTTP status (0 for a transport failure) and per-payment outcome. */
interface Done {
  status: number;
  payments: number;
  /** error codes seen (the request's, or its items'), each once per occurrence */
  codes: string[] | null;
}

type DoneFn = (slot: number, done: Done) => void;

interface Transport {
  readonly slots: number;
  open(): Promise<void>;
  send(slot: number): void;
  close(): void;
}

const ERROR_KEYS_MAX = 64;
const CODE_RE = /"code":"([A-Za-z0-9_]{1,64})"/g;

/** Error codes named in a JSON reply body; null when it names none (the fast path). */
function codesIn(body: string): string[] | null {
  if (!body.includes('"error"')) return null;
  return Array.from(body.matchAll(CODE_RE), (m) => m[1] as string);
}

/** Ids and bodies of payments: unique per process (tag) and per payment (counter). */
class Payments {
  private n = 0;
  constructor(private readonly tag: string, private readonly accounts: number) {}

  json(): string {
    const k = this.n % this.accounts;
    const id = this.tag + (this.n++).toString(36);
    return `{"id":"${id}","fromAccountId":"fund","toAccountId":"a${k}",` +
      '"amountMinor":"1","currencyCode":"USD"}';
  }

  batchJson(size: number): string {
    const items: string[] = [];
    for (let i = 0; i < size; i++) items.push(this.json());
    return `{"atomic":false,"transactions":[${items.join(',')}]}`;
  }
}

const HEAD_END = Buffer.from('\r\n\r\n');
const LENGTH_HEADERS = [Buffer.from('Content-Length:'), Buffer.from('content-length:')];

/** Content-Length of the response head in buf[from, headEnd), or -1. */
function contentLength(buf: Buffer, from: number, headEnd: number): number {
  for (const name of LENGTH_HEADERS) {
    const at = buf.indexOf(name, from);
    if (at < 0 || at > headEnd) continue;
    let i = at + name.length;
    while (buf[i] === 0x20) i++;
    let n = 0;
    for (let c = buf[i] as number; c >= 0x30 && c <= 0x39; c = buf[++i] as number) {
      n = n * 10 + (c - 0x30);
    }
    return n;
  }
  return -1;
}

/**
 * HTTP/1.1 keep-alive over raw sockets, one request in flight per connection. Hand-written
 * because node:http and fetch cost more CPU per request than the pod under test, on the same
 * two cores. No pipelining: uWebSockets.js closes a connection on which a second request
 * arrives while an asynchronous reply is pending (uWebSockets.js#277, wontfix).
 */
class HttpTransport implements Transport {
  private readonly sockets: net.Socket[] = [];
  private readonly rest: Array<Buffer | null> = [];
  private readonly heads: string[];
  private readonly payments: Payments;
  private readonly batch: boolean;
  private readonly target: URL;

  constructor(private readonly o: LoadOptions, private readonly done: DoneFn) {
    this.target = new URL(o.url);
    this.batch = o.mode === 'http-batch';
    const path = this.batch ? '/api/v1/transactions/batch' : '/api/v1/transactions';
    this.heads = o.tokens.map((t) => `POST ${path} HTTP/1.1\r\nHost: ${this.target.host}\r\n` +
      `Authorization: Bearer ${t}\r\nContent-Type: application/json\r\nContent-Length: `);
    this.payments = new Payments(o.tag, o.accounts);
  }

  get slots(): number {
    return this.o.connections;
  }

  async open(): Promise<void> {
    const port = Number(this.target.port);
    await Promise.all(Array.from({ length: this.o.connections }, (_, c) =>
      new Promise<void>((resolve, reject) => {
        const s = net.connect({ host: this.target.hostname, port, noDelay: true }, resolve);
        s.once('error', reject);
        s.on('data', (chunk: Buffer) => this.onData(c, chunk));
        s.on('close', () => this.onClose(c));
        this.sockets[c] = s;
        this.rest[c] = null;
      })));
  }

  send(slot: number): void {
    const body = this.batch ? this.payments.batchJson(this.o.batch) : this.payments.json();
    const head = this.heads[slot % this.heads.length] as string;
    const socket = this.sockets[slot];
    if (socket === undefined || socket.destroyed) {
      // closed while idle: fail this request (after the caller's bookkeeping), drop the slot
      const lost: Done = { status: 0, payments: 0, codes: ['connection_closed'] };
      queueMicrotask(() => this.done(slot, lost));
      return;
    }
    socket.write(`${head}${body.length}\r\n\r\n${body}`, 'latin1');
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }

  private onClose(c: number): void {
    // a reply lost with its connection counts as an error; the slot is not reused
    this.rest[c] = null;
    this.done(c, { status: 0, payments: 0, codes: ['connection_closed'] });
  }

  private onData(c: number, chunk: Buffer): void {
    const held = this.rest[c];
    const buf = held == null ? chunk : Buffer.concat([held, chunk]);
    let pos = 0;
    for (;;) {
      const headEnd = buf.indexOf(HEAD_END, pos);
      if (headEnd < 0) break;
      const length = contentLength(buf, pos, headEnd);
      if (length < 0) {
        this.sockets[c]?.destroy(new Error('response without Content-Length'));
        return;
      }
      const end = headEnd + 4 + length;
      if (end > buf.length) break;
      const status = Number(buf.toString('latin1', pos + 9, pos + 12));
      this.onResponse(c, status, buf.toString('latin1', headEnd + 4, end));
      pos = end;
    }
    this.rest[c] = pos >= buf.length ? null : Buffer.from(buf.subarray(pos));
  }

  private onResponse(c: number, status: number, body: string): void {
    const codes = codesIn(body);
    const ok = status >= 200 && status < 300;
    const items = this.batch ? this.o.batch : 1;
    const payments = ok ? items - (codes?.length ?? 0) : 0;
    this.done(c, { status, payments, codes });
  }
}

/**
 * WebSocket, `inflight` frames per socket. Like HttpTransport, not the SDK: packing and
 * unpacking 8190-item frames with msgpackr cost the load process about half a core at 180k
 * payments/s, on the two cores the pod under test uses. Frames come from a FrameTemplate;
 * replies are paired by rid and scanned for error codes, not decoded. The API tests drive
 * the SDK (protocol/client.ts); this only measures.
 */
class WsTransport implements Transport {
  private readonly sockets: WebSocket[] = [];
  private readonly template: FrameTemplate;
  /** rid -> slot of each request in flight */
  private readonly waiting = new Map<number, number>();
  private nextRid = 1;

  constructor(private readonly o: LoadOptions, private readonly done: DoneFn) {
    this.template = new FrameTemplate(o.tag, o.accounts, o.batch);
  }

  get slots(): number {
    return this.o.connections * this.o.inflight;
  }

  async open(): Promise<void> {
    for (let c = 0; c < this.o.connections; c++) {
      const token = this.o.tokens[c % this.o.tokens.length] as string;
      const socket = new WebSocket(wsUrl(this.o.url),
        { headers: { authorization: `Bearer ${token}` } });
      await new Promise<void>((resolve, reject) => {
        socket.once('open', () => resolve());
        socket.once('error', reject);
      });
      socket.on('message', (data: Buffer) => this.onMessage(data));
      socket.on('close', () => this.onClose(c));
      this.sockets.push(socket);
    }
  }

  send(slot: number): void {
    const socket = this.sockets[slot % this.o.connections] as WebSocket;
    if (socket.readyState !== WebSocket.OPEN) {
      const lost: Done = { status: 0, payments: 0, codes: ['connection_closed'] };
      queueMicrotask(() => this.done(slot, lost));
      return;
    }
    const rid = this.nextRid++;
    this.waiting.set(rid, slot);
    socket.send(this.template.frame(rid), { binary: true });
  }

  close(): void {
    for (const s of this.sockets) s.terminate();
  }

  private onMessage(data: Buffer): void {
    const head = replyHead(data);
    const slot = head === null ? undefined : this.waiting.get(head.rid);
    if (head === null || slot === undefined) return; // not ours: the scheduler times it out
    this.waiting.delete(head.rid);
    const codes = codesInFrame(data);
    if (!head.ok) {
      const code = codes?.[0] ?? 'invalid_reply';
      this.done(slot, { status: statusOf(code as ErrorCode), payments: 0, codes: [code] });
      return;
    }
    this.done(slot, { status: 200, payments: this.o.batch - (codes?.length ?? 0), codes });
  }

  private onClose(c: number): void {
    // requests lost with their socket count as errors; their slots are not reused
    for (const [rid, slot] of this.waiting) {
      if (slot % this.o.connections !== c) continue;
      this.waiting.delete(rid);
      this.done(slot, { status: 0, payments: 0, codes: ['connection_closed'] });
    }
  }
}

/**
 * Closed loop: every free slot sends at once. Open loop: request i is due at t0 + i/rate; a
 * due request waits for a free slot (the backlog) and its latency still starts at t0 + i/rate.
 */
class Scheduler {
  private readonly hist = new LatencyHistogram();
  private readonly lag = new LatencyHistogram();
  private readonly intended: Float64Array;
  private readonly free: number[] = [];
  private readonly errors = new Map<string, number>();
  private readonly statuses = new Map<string, number>();
  private t0 = 0;
  private windowFrom = 0;
  private windowTo = 0;
  private next = 0;
  private last = 0;
  private inflight = 0;
  private backlogMax = 0;
  private requests = 0;
  private requestsOk = 0;
  private payments = 0;
  private lastDone = 0;
  private windowCpu: NodeJS.CpuUsage | null = null;
  private windowCpuSeconds = Number.NaN;
  private finish: (() => void) | null = null;

  constructor(private readonly o: LoadOptions, private readonly transport: Transport) {
    this.intended = new Float64Array(transport.slots).fill(Number.NaN);
  }

  run(): Promise<void> {
    this.t0 = performance.now();
    this.windowFrom = this.t0 + this.o.warmupSeconds * 1000;
    this.windowTo = this.windowFrom + this.o.seconds * 1000;
    this.last = Math.ceil(((this.windowTo - this.t0) / 1000) * this.o.rate);
    for (let s = this.transport.slots - 1; s >= 0; s--) this.free.push(s);
    const finished = new Promise<void>((resolve) => (this.finish = resolve));
    if (this.o.rate > 0) this.tick();
    else while (this.free.length > 0) this.issue(this.free.pop() as number, this.t0);
    const drainAt = this.windowTo + this.o.drainSeconds * 1000;
    const timer = setTimeout(() => this.abandon(), drainAt - performance.now());
    const open = setTimeout(() => this.edge('open'), this.windowFrom - performance.now());
    const close = setTimeout(() => this.edge('close'), this.windowTo - performance.now());
    return finished.finally(() => {
      for (const t of [timer, open, close]) clearTimeout(t);
    });
  }

  private edge(which: keyof typeof WINDOW_EDGES): void {
    if (which === 'open') this.windowCpu = process.cpuUsage();
    else if (this.windowCpu !== null) {
      this.windowCpuSeconds = cpuSeconds(process.cpuUsage(this.windowCpu));
    }
    process.stdout.write(`${WINDOW_EDGES[which]}\n`);
  }

  /** Called back by the transport when a reply (or a failure) arrives for `slot`. */
  readonly onDone = (slot: number, d: Done): void => {
    const now = performance.now();
    const at = this.intended[slot] as number;
    if (Number.isNaN(at)) return; // the slot had nothing in flight (a closed idle socket)
    this.intended[slot] = Number.NaN;
    this.inflight--;
    if (at >= this.windowFrom && at < this.windowTo) this.count(now - at, d, now);
    if (d.status !== 0) this.free.push(slot);
    if (this.o.rate > 0) this.pump(now);
    else if (now < this.windowTo && this.free.length > 0) {
      this.issue(this.free.pop() as number, now);
    }
    this.maybeFinish();
  };

  report(elapsedCpuCores: number): LoadReport {
    const elapsed = Math.max(this.o.seconds, (this.lastDone - this.windowFrom) / 1000);
    const { tokens: _tokens, url: _url, ...options } = this.o;
    return {
      options, requests: this.requests, requestsOk: this.requestsOk, payments: this.payments,
      elapsedSeconds: elapsed, requestsPerSec: this.requests / elapsed,
      paymentsPerSec: this.payments / elapsed, latencyMs: this.hist.summaryMs(),
      sendLagMs: this.lag.summaryMs(), backlogMax: this.backlogMax,
      errors: Object.fromEntries(this.errors), statuses: Object.fromEntries(this.statuses),
      clientCpuCores: elapsedCpuCores, clientCpuSecondsTotal: cpuSeconds(process.cpuUsage()),
      clientCpuSecondsWindow: this.windowCpuSeconds,
    };
  }

  private count(latencyMs: number, d: Done, now: number): void {
    this.hist.recordMs(latencyMs);
    this.requests++;
    if (d.status >= 200 && d.status < 300) this.requestsOk++;
    this.payments += d.payments;
    this.lastDone = now;
    bump(this.statuses, String(d.status));
    for (const code of d.codes ?? []) bump(this.errors, code);
  }

  private issue(slot: number, intendedAt: number): void {
    this.intended[slot] = intendedAt;
    this.inflight++;
    const now = performance.now();
    if (intendedAt >= this.windowFrom && intendedAt < this.windowTo) {
      this.lag.recordMs(now - intendedAt);
    }
    this.transport.send(slot);
  }

  private readonly tick = (): void => {
    const now = performance.now();
    this.pump(now);
    // 1 ms is the timer floor; the lag histogram shows what it costs
    if (this.next < this.last) setTimeout(this.tick, 1);
  };

  private pump(now: number): void {
    const interval = 1000 / this.o.rate;
    const due = Math.min(this.last, Math.floor((now - this.t0) / interval) + 1);
    while (this.next < due && this.free.length > 0) {
      this.issue(this.free.pop() as number, this.t0 + this.next * interval);
      this.next++;
    }
    this.backlogMax = Math.max(this.backlogMax, due - this.next);
  }

  private maybeFinish(): void {
    const sending = this.o.rate > 0 ? this.next < this.last : performance.now() < this.windowTo;
    if (!sending && this.inflight === 0) this.finish?.();
  }

  /** Drain deadline: whatever is still in flight or never sent counts, at its current age. */
  private abandon(): void {
    const now = performance.now();
    const lost: Done = { status: 0, payments: 0, codes: ['no_reply_before_deadline'] };
    for (const at of this.intended) {
      if (!Number.isNaN(at) && at >= this.windowFrom && at < this.windowTo) {
        this.count(now - at, lost, now);
      }
    }
    const interval = 1000 / Math.max(this.o.rate, 1e-9);
    for (let i = this.next; this.o.rate > 0 && i < this.last; i++) {
      const at = this.t0 + i * interval;
      if (at >= this.windowFrom) this.count(now - at, { ...lost, codes: ['never_sent'] }, now);
    }
    this.finish?.();
  }
}

function cpuSeconds(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1e6;
}

function bump(map: Map<string, number>, key: string): void {
  const k = map.has(key) || map.size < ERROR_KEYS_MAX ? key : 'other';
  map.set(k, (map.get(k) ?? 0) + 1);
}

function positive(name: string, raw: string | undefined, min: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) {
    throw new RangeError(`--${name}: expected a number >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

export function parseLoadArgs(argv: string[]): LoadOptions {
  const s = { type: 'string' } as const;
  const { values: v } = parseArgs({ args: argv, options: { url: s, tokens: s, mode: s,
    connections: s, inflight: s, batch: s, rate: s, seconds: s, warmup: s, accounts: s,
    tag: s, drain: s } });
  const mode = v.mode ?? 'http';
  if (mode !== 'http' && mode !== 'http-batch' && mode !== 'ws') {
    throw new RangeError(`--mode: expected http, http-batch or ws, got ${JSON.stringify(mode)}`);
  }
  const tokens = (v.tokens ?? '').split(',').filter((t) => t !== '');
  if (v.url === undefined || tokens.length === 0) throw new RangeError('--url and --tokens needed');
  const tag = v.tag ?? 'L';
  if (!/^[A-Za-z0-9._:-]{1,24}$/.test(tag)) throw new RangeError('--tag: 1-24 id characters');
  return {
    url: v.url, tokens, mode, tag,
    connections: positive('connections', v.connections ?? '64', 1),
    inflight: mode === 'ws' ? positive('inflight', v.inflight ?? '8', 1) : 1,
    batch: mode === 'http' ? 1 : positive('batch', v.batch ?? '100', 1),
    rate: positive('rate', v.rate ?? '0', 0),
    seconds: positive('seconds', v.seconds ?? '5', 0.1),
    warmupSeconds: positive('warmup', v.warmup ?? '1', 0),
    accounts: positive('accounts', v.accounts ?? '100', 1),
    drainSeconds: positive('drain', v.drain ?? '10', 0),
  };
}

export async function runLoad(o: LoadOptions): Promise<LoadReport> {
  let scheduler: Scheduler | null = null;
  const onDone: DoneFn = (slot, d) => scheduler?.onDone(slot, d);
  const transport = o.mode === 'ws' ? new WsTransport(o, onDone) : new HttpTransport(o, onDone);
  await transport.open();
  scheduler = new Scheduler(o, transport);
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await scheduler.run();
  const cpu = process.cpuUsage(cpu0);
  const cores = cpuSeconds(cpu) / ((performance.now() - t0) / 1000);
  transport.close();
  return scheduler.report(Math.round(cores * 100) / 100);
}

async function main(): Promise<void> {
  const report = await runLoad(parseLoadArgs(process.argv.slice(2)));
  process.stdout.write(JSON.stringify(report) + '\n', () => process.exit(0));
}

main().catch((err: unknown) => {
  process.stderr.write(`load-client: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
