// WebSocket API: binary msgpack frames, many requests in flight per socket, replies paired by
// rid. Bounded per socket; never buffers unboundedly, never writes to a closed socket.

import type { HttpRequest, HttpResponse, TemplatedApp, WebSocket } from 'uWebSockets.js';
import type { us_socket_context_t } from 'uWebSockets.js';
import { errorRecord, statusOf, type ErrorCode, type ErrorRecord } from '../../protocol/errors.js';
import { decodeFrame, encodeReply, type Rid } from '../../protocol/frames.js';
import type { Op, Outcome } from '../../protocol/types.js';
import type { RouteLabel } from '../metrics.js';
import { bearerToken, Exchange, type GatewayContext } from './exchange.js';
import { admit, countItemErrors, validate } from './http.js';

export const WS_PATH = '/api/v1/ws';

export interface WsLimits {
  /** requests accepted but not yet answered on one socket; beyond it: 'overloaded' */
  inflightMax: number;
  /** above this many unsent reply bytes, new frames wait (parked) until the socket drains */
  softBufferBytes: number;
  /** bytes of parked frames per socket; a frame that does not fit is answered 'overloaded' */
  parkedBytesMax: number;
  /**
   * Unsent bytes past which a reply cannot be queued: the socket is closed (1013), since a
   * lost reply would leave its request waiting forever. A reader too slow to serve.
   */
  maxBackpressureBytes: number;
  idleTimeoutSeconds: number;
}

export const DEFAULT_WS_LIMITS: Readonly<WsLimits> = {
  inflightMax: 1024,
  softBufferBytes: 1024 * 1024,
  parkedBytesMax: 8 * 1024 * 1024,
  maxBackpressureBytes: 16 * 1024 * 1024,
  idleTimeoutSeconds: 120,
};

/** uWS send() result: the message was dropped because of the backpressure limit. */
const SEND_DROPPED = 2;
const CLOSE_TRY_AGAIN_LATER = 1013;

interface SocketState {
  tenant: string;
  inflight: number;
  closed: boolean;
  /** copies of frames that arrived while the socket was backpressured, oldest first */
  parked: Uint8Array[];
  parkedBytes: number;
}

type Socket = WebSocket<SocketState>;

export interface WsGateway {
  /** Open sockets, for the shutdown to close them. */
  readonly sockets: ReadonlySet<Socket>;
  closeAll(code: number, reason: string): void;
}

function routeOf(op: Op): RouteLabel {
  return `ws:${op}` as RouteLabel;
}

function statusOfOutcome(outcome: Outcome): number {
  return outcome.ok ? (outcome.created ? 201 : 200) : statusOf(outcome.error.code);
}

class WsHandlers {
  readonly sockets = new Set<Socket>();

  constructor(
    private readonly ctx: GatewayContext,
    private readonly limits: WsLimits,
  ) {}

  /** Sends one reply unless the socket is gone; a reply uWS would drop closes the socket. */
  private send(ws: Socket, s: SocketState, rid: Rid | null, outcome: Outcome): void {
    if (s.closed) return;
    const bytes = encodeReply(rid, outcome);
    let result = 0;
    ws.cork(() => {
      result = ws.send(bytes, true);
    });
    if (result === SEND_DROPPED && !s.closed) {
      s.closed = true;
      this.ctx.log.warn({ tenant: s.tenant }, 'websocket closed: reader too slow');
      ws.end(CLOSE_TRY_AGAIN_LATER, 'reader too slow');
    }
  }

  private reject(
    ws: Socket,
    s: SocketState,
    rid: Rid | null,
    route: RouteLabel,
    error: ErrorRecord,
  ): void {
    this.send(ws, s, rid, { ok: false, error });
    this.ctx.metrics.observe(route, statusOf(error.code), 0, error.code);
  }

  private refusal(s: SocketState): ErrorCode | null {
    if (this.ctx.traffic.shuttingDown) return 'shutting_down';
    if (s.inflight >= this.limits.inflightMax) return 'overloaded';
    if (!this.ctx.limiter.take(s.tenant)) return 'rate_limited';
    return null;
  }

  private handleFrame(ws: Socket, s: SocketState, bytes: Uint8Array): void {
    const { ctx } = this;
    const frame = decodeFrame(bytes, ctx.config.maxBodyBytes);
    if (!frame.ok) return this.reject(ws, s, frame.rid, 'ws:invalid', frame.error);
    const route = routeOf(frame.op);
    const refused = this.refusal(s);
    if (refused !== null) return this.reject(ws, s, frame.rid, route, errorRecord(refused));
    const v = validate(frame.op, frame.input);
    if (!v.ok) return this.reject(ws, s, frame.rid, route, v.error);
    const rid = frame.rid;
    const t0 = performance.now();
    s.inflight++;
    ctx.traffic.begin();
    ctx.ledger.submit(s.tenant, v.cmd, (outcome) => {
      s.inflight--;
      ctx.traffic.end();
      try {
        countItemErrors(ctx, outcome);
        this.send(ws, s, rid, outcome);
        const code = outcome.ok ? null : outcome.error.code;
        ctx.metrics.observe(route, statusOfOutcome(outcome), (performance.now() - t0) / 1000, code);
      } catch (err) {
        ctx.log.error({ err, route }, 'websocket reply failed');
      }
      if (s.parked.length > 0 && !s.closed) this.resume(ws, s);
    });
  }

  /** Works through parked frames while the socket has room. */
  resume(ws: Socket, s: SocketState): void {
    const { softBufferBytes, inflightMax } = this.limits;
    while (s.parked.length > 0 && !s.closed && ws.getBufferedAmount() <= softBufferBytes) {
      if (s.inflight >= inflightMax) return; // a reply will call resume again
      const next = s.parked.shift();
      if (next === undefined) return;
      s.parkedBytes -= next.byteLength;
      this.handleFrame(ws, s, next);
    }
  }

  message(ws: Socket, message: ArrayBuffer, isBinary: boolean): void {
    const s = ws.getUserData();
    if (s.closed) return;
    if (!isBinary) {
      const error = errorRecord('invalid_frame', 'frames must be binary msgpack, not text');
      return this.reject(ws, s, null, 'ws:invalid', error);
    }
    const { softBufferBytes, inflightMax, parkedBytesMax } = this.limits;
    const mustWait = s.parked.length > 0 || s.inflight >= inflightMax ||
      ws.getBufferedAmount() > softBufferBytes;
    if (!mustWait) return this.handleFrame(ws, s, new Uint8Array(message));
    const full = s.inflight + s.parked.length >= inflightMax ||
      s.parkedBytes + message.byteLength > parkedBytesMax;
    if (full) {
      // Answer now (the rid is needed for that) instead of holding more. A client that keeps
      // sending without reading grows only its unsent replies, until it is closed.
      const frame = decodeFrame(new Uint8Array(message), this.ctx.config.maxBodyBytes);
      const route = frame.ok ? routeOf(frame.op) : 'ws:invalid';
      const error = frame.ok ? errorRecord('overloaded') : frame.error;
      return this.reject(ws, s, frame.rid, route, error);
    }
    // uWS reuses the message memory after this callback returns: keep a copy.
    s.parked.push(new Uint8Array(message).slice());
    s.parkedBytes += message.byteLength;
  }

  upgrade(res: HttpResponse, req: HttpRequest, uwsCtx: us_socket_context_t): void {
    const key = req.getHeader('sec-websocket-key');
    const protocol = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const header = bearerToken(req.getHeader('authorization'));
    const token = header !== '' ? header : new URLSearchParams(req.getQuery() ?? '').get('token');
    const admission = admit(this.ctx, token ?? '');
    if (!admission.ok) return new Exchange(res, 'ws:upgrade', this.ctx).fail(admission.code);
    const state: SocketState = {
      tenant: admission.tenant,
      inflight: 0,
      closed: false,
      parked: [],
      parkedBytes: 0,
    };
    res.upgrade(state, key, protocol, extensions, uwsCtx);
    this.ctx.metrics.observe('ws:upgrade', 101, 0, null);
  }

  open(ws: Socket): void {
    this.sockets.add(ws);
    this.ctx.metrics.wsOpened();
  }

  close(ws: Socket): void {
    const s = ws.getUserData();
    s.closed = true;
    s.parked = [];
    s.parkedBytes = 0;
    this.sockets.delete(ws);
    this.ctx.metrics.wsClosed();
  }
}

export function mountWs(
  app: TemplatedApp,
  ctx: GatewayContext,
  limits: WsLimits = DEFAULT_WS_LIMITS,
): WsGateway {
  const h = new WsHandlers(ctx, limits);
  app.ws<SocketState>(WS_PATH, {
    maxPayloadLength: ctx.config.maxBodyBytes,
    maxBackpressure: limits.maxBackpressureBytes,
    // Our send() closes the socket itself on a dropped reply (see WsHandlers.send).
    closeOnBackpressureLimit: 1,
    idleTimeout: limits.idleTimeoutSeconds,
    sendPingsAutomatically: true,
    upgrade: (res, req, uwsCtx) => h.upgrade(res, req, uwsCtx),
    open: (ws) => h.open(ws),
    message: (ws, message, isBinary) => {
      try {
        h.message(ws, message, isBinary);
      } catch (err) {
        // a bug here must cost one frame, not the pod
        ctx.log.error({ err }, 'websocket frame handler failed');
      }
    },
    drain: (ws) => h.resume(ws, ws.getUserData()),
    close: (ws) => h.close(ws),
  });
  // A plain GET (no upgrade) on the WebSocket path.
  app.get(WS_PATH, (res) => {
    new Exchange(res, 'ws:upgrade', ctx).fail('invalid_request', 'expected a WebSocket upgrade');
  });
  return {
    sockets: h.sockets,
    closeAll(code, reason) {
      for (const ws of [...h.sockets]) {
        const s = ws.getUserData();
        if (s.closed) continue;
        s.closed = true;
        ws.end(code, reason);
      }
    },
  };
}
