// The HTTP API of API.md on uWebSockets.js: auth, rate limit, body, route → op, validation at
// the edge, submit to the ledger, render. Never does ledger arithmetic, never trusts a body.

import { randomUUID } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { ErrorCode, ErrorRecord } from '../../protocol/errors.js';
import { parseJsonBody } from '../../protocol/json-body.js';
import type { Command, Op, Outcome } from '../../protocol/types.js';
import { toCommand } from '../../protocol/validate.js';
import { outcomeBody } from '../../protocol/views.js';
import type { RouteLabel } from '../metrics.js';
import { mountAdmin } from './admin.js';
import { bearerToken, Exchange, readBody, type GatewayContext } from './exchange.js';

export type { GatewayContext } from './exchange.js';

type BodyRule = 'required' | 'optional' | 'none';

/** What a handler read from the request before it returned (uWS frees `req` afterwards). */
interface RequestParts {
  params: string[];
  query: URLSearchParams;
  idempotencyKey: string;
}

interface ApiRoute {
  method: 'get' | 'post';
  /** API.md answers post and void with 200 (a state change of an existing transaction) */
  updates: boolean;
  pattern: string;
  op: Op;
  route: RouteLabel;
  params: number;
  body: BodyRule;
  input: (parts: RequestParts, body: unknown) => unknown;
}

const API = '/api/v1';

const ROUTES: readonly ApiRoute[] = [
  route('post', '/accounts', 'createAccount', 0, 'required', (_p, body) => body),
  route('get', '/accounts/:id', 'getAccount', 1, 'none', (p) => ({ id: p.params[0] })),
  route('get', '/accounts/:id/entries', 'listEntries', 1, 'none', entriesInput),
  route('post', '/transactions', 'transfer', 0, 'required', (p, body) =>
    withId(body, p.idempotencyKey),
  ),
  route('post', '/transactions/batch', 'transferBatch', 0, 'required', (p, body) =>
    batchWithIds(body, p.idempotencyKey),
  ),
  route('get', '/transactions/:id', 'getTransaction', 1, 'none', (p) => ({ id: p.params[0] })),
  route('post', '/transactions/:id/post', 'post', 1, 'optional', (p, body) =>
    mergeId(body, p.params[0]),
  ),
  route('post', '/transactions/:id/void', 'void', 1, 'optional', (p, body) =>
    mergeId(body, p.params[0]),
  ),
];

function route(
  method: 'get' | 'post',
  pattern: string,
  op: Op,
  params: number,
  body: BodyRule,
  input: ApiRoute['input'],
): ApiRoute {
  const label = `http:${op}` as RouteLabel;
  const updates = op === 'post' || op === 'void';
  return { method, updates, pattern: API + pattern, op, route: label, params, body, input };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A transfer without `id` takes the Idempotency-Key, else a fresh random id. */
function withId(body: unknown, idempotencyKey: string): unknown {
  if (!isPlainObject(body) || body.id !== undefined) return body;
  const id = idempotencyKey !== '' ? idempotencyKey : randomId();
  return { ...body, id };
}

/**
 * Batch items without `id`: with an Idempotency-Key header each takes `<key>.<index>`, so a
 * retried batch replays item by item; without one, a fresh random id.
 */
function batchWithIds(body: unknown, idempotencyKey: string): unknown {
  if (!isPlainObject(body) || !Array.isArray(body.transactions)) return body;
  const items: unknown[] = body.transactions;
  const keyed = (i: number): string => (idempotencyKey === '' ? '' : `${idempotencyKey}.${i}`);
  return { ...body, transactions: items.map((t, i) => withId(t, keyed(i))) };
}

/** The path names the transaction; an `id` in the body cannot redirect it. */
function mergeId(body: unknown, id: string | undefined): unknown {
  if (body === undefined) return { id };
  return isPlainObject(body) ? { ...body, id } : body;
}

function entriesInput(p: RequestParts): unknown {
  return {
    accountId: p.params[0],
    limit: p.query.get('limit') ?? undefined,
    after: p.query.get('after') ?? undefined,
  };
}

/** 32 hex chars: fits the id rule and carries 122 random bits. */
export function randomId(): string {
  return randomUUID().replace(/-/g, '');
}

function decodeParam(raw: string): string {
  if (!raw.includes('%')) return raw;
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw; // malformed escapes stay as they are and fail the id rule
  }
}

export type Validated = { ok: true; cmd: Command } | { ok: false; error: ErrorRecord };

/** The one place the gateways call protocol validation. */
export function validate(op: Op, input: unknown): Validated {
  const result = toCommand(op, input);
  return result.ok ? { ok: true, cmd: result.cmd } : { ok: false, error: result.error };
}

export type Admission = { ok: true; tenant: string } | { ok: false; code: ErrorCode };

/** Auth and rate limit shared by both gateways: the tenant, or the error to answer. */
export function admit(ctx: GatewayContext, token: string): Admission {
  if (ctx.traffic.shuttingDown) return { ok: false, code: 'shutting_down' };
  const tenant = token === '' ? null : ctx.tenants.authenticate(token);
  if (tenant === null) return { ok: false, code: 'unauthorized' };
  if (!ctx.limiter.take(tenant)) return { ok: false, code: 'rate_limited' };
  return { ok: true, tenant };
}

/** Counts the errors of batch items, which ride inside a 2xx reply. */
export function countItemErrors(ctx: GatewayContext, outcome: Outcome): void {
  if (!outcome.ok || !('results' in outcome.value)) return;
  for (const item of outcome.value.results) if (!item.ok) ctx.metrics.error(item.error.code);
}

function render(ctx: GatewayContext, x: Exchange, r: ApiRoute, outcome: Outcome): void {
  countItemErrors(ctx, outcome);
  const { status, body } = outcomeBody(outcome);
  const shown = r.updates && status === 201 ? 200 : status;
  x.send(shown, JSON.stringify(body), outcome.ok ? null : outcome.error.code);
}

function submit(ctx: GatewayContext, x: Exchange, tenant: string, r: ApiRoute, input: unknown) {
  const v = validate(r.op, input);
  if (!v.ok) return x.fail(v.error.code, v.error.message);
  ctx.traffic.begin();
  ctx.ledger.submit(tenant, v.cmd, (outcome) => {
    ctx.traffic.end();
    guard(ctx, x, () => render(ctx, x, r, outcome));
  });
}

/** A bug in a handler answers 500 and is logged; it never takes the pod down. */
export function guard(ctx: GatewayContext, x: Exchange, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    ctx.log.error({ err, route: x.route }, 'request handler failed');
    x.fail('internal_error');
  }
}

function onApiBody(
  ctx: GatewayContext,
  x: Exchange,
  r: ApiRoute,
  tenant: string,
  parts: RequestParts,
) {
  return (bytes: Uint8Array): void =>
    guard(ctx, x, () => {
      let body: unknown = undefined;
      if (bytes.byteLength > 0 || r.body === 'required') {
        const parsed = parseJsonBody(bytes, ctx.config.maxBodyBytes);
        if (!parsed.ok) return x.fail(parsed.error.code, parsed.error.message);
        body = parsed.value;
      }
      submit(ctx, x, tenant, r, r.input(parts, body));
    });
}

function apiHandler(ctx: GatewayContext, r: ApiRoute) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const x = new Exchange(res, r.route, ctx);
    guard(ctx, x, () => {
      const admission = admit(ctx, bearerToken(req.getHeader('authorization')));
      if (!admission.ok) return x.fail(admission.code);
      const tenant = admission.tenant;
      const params: string[] = [];
      for (let i = 0; i < r.params; i++) params.push(decodeParam(req.getParameter(i)));
      const parts: RequestParts = {
        params,
        query: new URLSearchParams(req.getQuery() ?? ''),
        idempotencyKey: req.getHeader('idempotency-key'),
      };
      if (r.body === 'none') return submit(ctx, x, tenant, r, r.input(parts, undefined));
      const onBody = onApiBody(ctx, x, r, tenant, parts);
      readBody(x, req.getHeader('content-length'), ctx.config.maxBodyBytes, onBody);
    });
  };
}

function methodNotAllowed(ctx: GatewayContext, allow: string) {
  return (res: HttpResponse): void => {
    const x = new Exchange(res, 'unmatched', ctx);
    x.headers = ['allow', allow];
    x.fail('method_not_allowed');
  };
}

function mountOps(app: TemplatedApp, ctx: GatewayContext): void {
  app.get('/metrics', (res) => {
    const x = new Exchange(res, 'metrics', ctx);
    ctx.metrics.text().then(
      (text) => x.send(200, text, null, ctx.metrics.contentType),
      (err: unknown) => {
        ctx.log.error({ err }, 'metrics collection failed');
        x.fail('internal_error');
      },
    );
  });
  app.get('/health/live', (res) => new Exchange(res, 'health', ctx).send(200, '{"status":"live"}'));
  app.get('/health/ready', (res) => {
    const x = new Exchange(res, 'health', ctx);
    if (ctx.traffic.shuttingDown) return x.fail('shutting_down');
    if (!ctx.ledger.isReady()) return x.fail('shard_unavailable');
    x.send(200, '{"status":"ready"}');
  });
  for (const path of ['/metrics', '/health/live', '/health/ready']) {
    app.any(path, methodNotAllowed(ctx, 'GET'));
  }
}

/** Registers every HTTP route; call after the WebSocket route so upgrades reach it first. */
export function mountHttp(app: TemplatedApp, ctx: GatewayContext): void {
  const allowed = new Map<string, string[]>();
  for (const r of ROUTES) {
    app[r.method](r.pattern, apiHandler(ctx, r));
    allowed.set(r.pattern, [...(allowed.get(r.pattern) ?? []), r.method.toUpperCase()]);
  }
  for (const [pattern, methods] of allowed) {
    app.any(pattern, methodNotAllowed(ctx, methods.join(', ')));
  }
  mountOps(app, ctx);
  mountAdmin(app, ctx);
  app.any('/*', (res) => new Exchange(res, 'unmatched', ctx).fail('route_not_found'));
}
