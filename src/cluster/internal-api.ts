// The pod-to-pod API under /internal/v1, authenticated with LEDGER_CLUSTER_TOKEN: forwarded
// command batches (msgpack), shard acquisition for moves, moves relayed to a shard's owner.
// Never reachable without the cluster token; never re-validates what the sending pod checked.

import { createHash, timingSafeEqual } from 'node:crypto';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import { decodeEnvelopes } from '../../protocol/envelope-codec.js';
import { encodeOutcomes } from '../../protocol/thread-codec.js';
import type { Envelope, Outcome } from '../../protocol/types.js';
import {
  bearerToken,
  Exchange,
  readBody,
  statusLine,
  type GatewayContext,
} from '../gateway/exchange.js';
import type { ClusterAdmin } from './cluster-admin.js';
import type { ClusterNode } from './cluster-node.js';
import { describe } from './cluster-node.js';
import { HOPS_HEADER, HOPS_MAX, INTERNAL_COMMANDS_PATH } from './forwarder.js';
import { INTERNAL_SHARDS_PATH, MoveError } from './shard-mover.js';

const COMMANDS_BYTES_MAX = 256 * 1024 * 1024;
const CONTROL_BYTES_MAX = 64 * 1024;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Routes one decoded batch; calls `done` once with every outcome, in order. */
function routeAll(
  node: ClusterNode,
  envelopes: Envelope[],
  hops: number,
  done: (outcomes: Outcome[]) => void,
): void {
  const outcomes = new Array<Outcome>(envelopes.length);
  let left = envelopes.length;
  if (left === 0) return done(outcomes);
  envelopes.forEach((env, i) => {
    node.route(env.tenant, env.cmd, (outcome) => {
      outcomes[i] = outcome;
      if (--left === 0) done(outcomes);
    }, hops);
  });
}

function commandsHandler(ctx: GatewayContext, node: ClusterNode, expected: Buffer) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const x = new Exchange(res, 'internal', ctx);
    if (!timingSafeEqual(digest(bearerToken(req.getHeader('authorization'))), expected)) {
      return x.fail('unauthorized');
    }
    const hopsRaw = Number(req.getHeader(HOPS_HEADER));
    const hops = Number.isInteger(hopsRaw) && hopsRaw >= 1 ? hopsRaw : HOPS_MAX;
    readBody(x, req.getHeader('content-length'), COMMANDS_BYTES_MAX, (bytes) => {
      let envelopes: Envelope[];
      try {
        envelopes = decodeEnvelopes(bytes);
      } catch (err) {
        return x.fail('invalid_frame', describe(err));
      }
      ctx.traffic.begin();
      routeAll(node, envelopes, hops, (outcomes) => {
        ctx.traffic.end();
        if (!x.open) return;
        x.done = true;
        const body = encodeOutcomes(outcomes);
        res.cork(() => {
          res.writeStatus(statusLine(200)).writeHeader('content-type', 'application/msgpack');
          res.end(body);
        });
      });
    });
  };
}

type ControlHandler = (shard: number, body: Record<string, unknown>) => Promise<unknown>;

/** JSON control call on one shard: token, shard number, small JSON body, 200 or an error. */
function controlHandler(ctx: GatewayContext, expected: Buffer, handler: ControlHandler) {
  return (res: HttpResponse, req: HttpRequest): void => {
    const x = new Exchange(res, 'internal', ctx);
    if (!timingSafeEqual(digest(bearerToken(req.getHeader('authorization'))), expected)) {
      return x.fail('unauthorized');
    }
    const raw = req.getParameter(0) ?? '';
    const shard = /^\d{1,5}$/.test(raw) ? Number(raw) : -1;
    if (shard < 0 || shard >= ctx.config.shardCount) return x.fail('invalid_request', 'shard');
    readBody(x, req.getHeader('content-length'), CONTROL_BYTES_MAX, (bytes) => {
      let body: Record<string, unknown> = {};
      try {
        const text = Buffer.from(bytes).toString('utf8');
        body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
      } catch {
        return x.fail('invalid_json');
      }
      handler(shard, body).then(
        (result) => x.send(200, JSON.stringify(result)),
        (err: unknown) => {
          if (err instanceof MoveError) return x.fail(err.code, err.message);
          x.fail('shard_unavailable', describe(err));
        },
      );
    });
  };
}

/** Mounts /internal/v1 (before the gateway's catch-all). Without a token nothing is mounted. */
export function mountInternal(
  app: TemplatedApp,
  ctx: GatewayContext,
  node: ClusterNode,
  admin: ClusterAdmin,
): void {
  const token = node.deps.config.token;
  if (token === null) return;
  const expected = digest(token);
  app.post(INTERNAL_COMMANDS_PATH, commandsHandler(ctx, node, expected));
  app.post(`${INTERNAL_SHARDS_PATH}/:shard/acquire`, controlHandler(ctx, expected, async (s) => {
    if (!(await node.ensureServing(s))) {
      throw new MoveError('shard_unavailable', `${node.podId} could not claim shard ${s}`);
    }
    return { shard: s, epoch: node.handoffs[s]?.epoch ?? 0, owner: node.podId };
  }));
  app.post(`${INTERNAL_SHARDS_PATH}/:shard/move`, controlHandler(ctx, expected, (s, body) => {
    const to = body.to;
    if (typeof to !== 'string') throw new MoveError('invalid_request', 'to: required pod id');
    return admin.move(s, to, body.wait === true, false);
  }));
}
