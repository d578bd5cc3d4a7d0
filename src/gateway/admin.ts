// Admin API under /admin/v1, enabled only when LEDGER_ADMIN_TOKEN is set (404 otherwise):
// tenants, shard status, shard moves, pods, rebalancing. Never reveals or logs a tenant token
// except in the reply.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { parseJsonBody } from '../../protocol/json-body.js';
import type { ClusterAdmin } from '../cluster/cluster-admin.js';
import { MoveError } from '../cluster/shard-mover.js';
import { bearerToken, Exchange, readBody, type GatewayContext } from './exchange.js';

const ADMIN = '/admin/v1';
/** Admin bodies are tiny; this bound holds whatever LEDGER_MAX_BODY_BYTES says. */
const ADMIN_BODY_BYTES_MAX = 64 * 1024;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Constant-time comparison of the presented token with the configured admin token. */
function isAdmin(expected: Buffer, header: string): boolean {
  const token = bearerToken(header);
  return token !== '' && timingSafeEqual(digest(token), expected);
}

type AdminHandler = (ctx: GatewayContext, x: Exchange, req: HttpRequest) => void;

/** Wraps a handler with the admin checks: 404 when disabled, 401 on a wrong token. */
function adminRoute(ctx: GatewayContext, expected: Buffer | null, handler: AdminHandler) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const x = new Exchange(res, 'admin', ctx);
    if (expected === null) return x.fail('route_not_found');
    if (!isAdmin(expected, req.getHeader('authorization'))) return x.fail('unauthorized');
    try {
      handler(ctx, x, req);
    } catch (err) {
      ctx.log.error({ err }, 'admin handler failed');
      x.fail('internal_error');
    }
  };
}

/** Reads a JSON object body, answering 400/413 itself; `onObject` gets only objects. */
function readObject(
  ctx: GatewayContext,
  x: Exchange,
  req: HttpRequest,
  onObject: (body: Record<string, unknown>) => void,
): void {
  const max = Math.min(ADMIN_BODY_BYTES_MAX, ctx.config.maxBodyBytes);
  readBody(x, req.getHeader('content-length'), max, (bytes) => {
    const parsed = parseJsonBody(bytes, max);
    if (!parsed.ok) return x.fail(parsed.error.code, parsed.error.message);
    const value = parsed.value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return x.fail('invalid_request', 'body: expected a JSON object');
    }
    onObject(value as Record<string, unknown>);
  });
}

const createTenant: AdminHandler = (ctx, x, req) => {
  readObject(ctx, x, req, (body) => {
    const id = body.id;
    if (typeof id !== 'string') return x.fail('invalid_request', 'id: required string');
    ctx.tenants.createTenant(id).then(
      (result) => {
        if (!result.ok) return x.fail(result.error.code, result.error.message);
        ctx.log.info({ tenant: id }, 'tenant created');
        x.send(201, JSON.stringify({ id: result.id, token: result.token }));
      },
      (err: unknown) => {
        ctx.log.error({ err, tenant: id }, 'tenant registry write failed');
        x.fail('storage_unavailable', 'tenant registry could not be written');
      },
    );
  });
};

/** Multi-pod: every shard of the cluster from the directory (owner, epoch, state, ...). */
function listClusterShards(ctx: GatewayContext, x: Exchange, cluster: ClusterAdmin): void {
  cluster.shards().then(
    (rows) => x.send(200, JSON.stringify({ shards: rows })),
    (err: unknown) => {
      ctx.log.error({ err }, 'shard directory read failed');
      x.fail('storage_unavailable', 'shard directory could not be read');
    },
  );
}

const listShards: AdminHandler = (ctx, x) => {
  const cluster = ctx.ledger.cluster;
  if (cluster !== undefined) return listClusterShards(ctx, x, cluster);
  const shards = ctx.ledger.shards;
  if (shards === undefined) return x.fail('route_not_found', 'this ledger reports no shards');
  shards.call(ctx.ledger).then(
    (list) => {
      const rows = list.map((s) => ({
        shard: s.shard,
        owner: ctx.config.podId,
        epoch: s.epoch,
        lastSequence: s.lastSequence,
        durableSequence: s.durableSequence,
        state: s.state,
      }));
      x.send(200, JSON.stringify({ shards: rows }));
    },
    (err: unknown) => {
      ctx.log.error({ err }, 'shard status failed');
      x.fail('shard_unavailable', 'shard status could not be read');
    },
  );
};

const moveShard: AdminHandler = (ctx, x, req) => {
  const raw = req.getParameter(0);
  readObject(ctx, x, req, (body) => {
    const shard = /^\d{1,5}$/.test(raw) ? Number(raw) : -1;
    if (shard < 0 || shard >= ctx.config.shardCount) {
      const range = `0..${ctx.config.shardCount - 1}`;
      return x.fail('invalid_request', `shard: ${JSON.stringify(raw)} is not a shard (${range})`);
    }
    const to = body.to;
    if (typeof to !== 'string' || to === '') {
      return x.fail('invalid_request', 'to: required pod id');
    }
    const cluster = ctx.ledger.cluster;
    if (cluster !== undefined) return runMove(ctx, x, cluster, { shard, to, wait: body.wait });
    if (to === ctx.config.podId) {
      return x.send(202, JSON.stringify({ shard, from: ctx.config.podId, to, state: 'owned' }));
    }
    // A single pod has no other pod to hand a shard to (multi-pod moves: issue 7).
    const message =
      `no pod ${JSON.stringify(to)} in this cluster: pod ${ctx.config.podId} runs ` +
      'alone and owns every shard';
    x.fail('pod_not_found', message);
  });
};

/** Errors of a move or rebalance: MoveError codes as they are, anything else retryable. */
function failMove(ctx: GatewayContext, x: Exchange, err: unknown): void {
  if (err instanceof MoveError) return x.fail(err.code, err.message);
  ctx.log.error({ err }, 'shard move failed');
  x.fail('shard_unavailable', err instanceof Error ? err.message : String(err));
}

/** 202 once the move started; with `"wait": true`, 200 when the target serves the shard. */
function runMove(
  ctx: GatewayContext,
  x: Exchange,
  cluster: ClusterAdmin,
  m: { shard: number; to: string; wait: unknown },
): void {
  const wait = m.wait === true;
  cluster.move(m.shard, m.to, wait).then(
    (reply) => x.send(wait ? 200 : 202, JSON.stringify(reply)),
    (err: unknown) => failMove(ctx, x, err),
  );
}

const listPods: AdminHandler = (ctx, x) => {
  const cluster = ctx.ledger.cluster;
  if (cluster === undefined) {
    const alone = { podId: ctx.config.podId, address: '', alive: true, shards: -1 };
    return x.send(200, JSON.stringify({ pods: [alone] }));
  }
  cluster.pods().then(
    (pods) => x.send(200, JSON.stringify({ pods })),
    (err: unknown) => failMove(ctx, x, err),
  );
};

/** Spreads shards evenly over live pods: 202 with the plan (200 when `"wait": true`). */
const rebalance: AdminHandler = (ctx, x, req) => {
  readObject(ctx, x, req, (body) => {
    const cluster = ctx.ledger.cluster;
    if (cluster === undefined) return x.send(202, JSON.stringify({ moves: [] }));
    const wait = body.wait === true;
    cluster.rebalance(wait).then(
      (moves) => x.send(wait ? 200 : 202, JSON.stringify({ moves })),
      (err: unknown) => failMove(ctx, x, err),
    );
  });
};

export function mountAdmin(app: TemplatedApp, ctx: GatewayContext): void {
  const expected = ctx.config.adminToken === null ? null : digest(ctx.config.adminToken);
  app.post(`${ADMIN}/tenants`, adminRoute(ctx, expected, createTenant));
  app.get(`${ADMIN}/shards`, adminRoute(ctx, expected, listShards));
  app.post(`${ADMIN}/shards/:shard/move`, adminRoute(ctx, expected, moveShard));
  app.get(`${ADMIN}/pods`, adminRoute(ctx, expected, listPods));
  app.post(`${ADMIN}/shards/rebalance`, adminRoute(ctx, expected, rebalance));
  const notAllowed = (allow: string) => (res: HttpResponse): void => {
    const x = new Exchange(res, 'admin', ctx);
    if (expected === null) return x.fail('route_not_found');
    x.headers = ['allow', allow];
    x.fail('method_not_allowed');
  };
  app.any(`${ADMIN}/tenants`, notAllowed('POST'));
  app.any(`${ADMIN}/shards`, notAllowed('GET'));
  app.any(`${ADMIN}/shards/:shard/move`, notAllowed('POST'));
  app.any(`${ADMIN}/pods`, notAllowed('GET'));
  app.any(`${ADMIN}/shards/rebalance`, notAllowed('POST'));
  app.any(`${ADMIN}/*`, (res) => new Exchange(res, 'admin', ctx).fail('route_not_found'));
}
