// Kubernetes manifests and the Dockerfile against the server they run: renders base and each
// overlay, validates every object with the Kubernetes JSON schemas, then checks probes, ports,
// env names and values (through loadConfig), secrets by reference only, and hardening.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  clusterConfigOf,
  configOf,
  configVariables,
  defaults,
  heapCapMib,
  quantity,
  RUNTIME_VARIABLES,
  SECRET_STAND_INS,
} from './support/deploy-config.js';
import { arr, at, DEPLOY, isObj, kustomize, ROOT, type Obj } from './support/deploy-files.js';
import { parseAllDocuments } from 'yaml';
import { WORKER_YOUNG_GENERATION_MB } from '../shards/actor-host.js';
import { MAIN_YOUNG_GENERATION_MIB, POD_NODE_FLAGS } from '../src/node-flags.js';

const K8S = path.join(DEPLOY, 'k8s');
const TARGETS = ['base', 'overlays/dev', 'overlays/prod'] as const;

interface Validating {
  validate(): void;
}
type ModelClass = new (data: unknown) => Validating;

/** The kubernetes-models class for an object (its JSON schema is the API's OpenAPI schema). */
async function modelFor(o: Obj): Promise<ModelClass> {
  const apiVersion = String(o.apiVersion);
  const kind = String(o.kind);
  const mod = (await import(`kubernetes-models/${apiVersion}/${kind}`)) as Record<string, unknown>;
  const cls = mod[kind];
  if (typeof cls !== 'function') throw new Error(`no schema for ${apiVersion} ${kind}`);
  return cls as ModelClass;
}

function byKind(objects: Obj[], kind: string): Obj[] {
  return objects.filter((o) => o.kind === kind);
}

function one(objects: Obj[], kind: string, name?: string): Obj {
  const found = byKind(objects, kind).filter(
    (o) => name === undefined || at(o, 'metadata', 'name') === name,
  );
  expect(found, `${kind} ${name ?? ''}`).toHaveLength(1);
  return found[0] as Obj;
}

function ledgerContainer(sts: Obj): Obj {
  const c = arr(at(sts, 'spec', 'template', 'spec', 'containers')).find(
    (x) => at(x, 'name') === 'ledger',
  );
  if (!isObj(c)) throw new Error('no ledger container');
  return c;
}

/** The pod the tests look at through the downward API (fieldRef metadata.name). */
const POD_NAME = 'ledger-0';

/**
 * Kubernetes' dependent variables: `$(NAME)` in a value becomes NAME's value when NAME was
 * defined EARLIER (envFrom first, then env in order); otherwise it stays literally, which the
 * pod would then see. `$$` escapes a dollar.
 */
function expandDependent(value: string, defined: Readonly<Record<string, string>>): string {
  return value.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (ref, name: string | undefined) =>
    name === undefined ? '$' : (defined[name] ?? ref));
}

/**
 * The container's environment as the process sees it: ConfigMap via envFrom, then env.
 * `plain`: literal values (dependent references expanded); `refs`: entries from a Secret or the
 * downward API; `resolved`: both, with the stand-ins a Secret and pod ledger-0 would give.
 */
function effectiveEnv(
  objects: Obj[],
  c: Obj,
): { plain: Record<string, string>; refs: Obj[]; resolved: Record<string, string> } {
  const plain: Record<string, string> = {};
  for (const from of arr(c.envFrom)) {
    const name = at(from, 'configMapRef', 'name');
    const cm = one(objects, 'ConfigMap', String(name));
    for (const [k, v] of Object.entries((cm.data ?? {}) as Obj)) plain[k] = String(v);
  }
  const refs: Obj[] = [];
  const resolved: Record<string, string> = { ...plain };
  for (const e of arr(c.env).filter(isObj)) {
    const name = String(e.name);
    if (typeof e.value === 'string') {
      plain[name] = expandDependent(e.value, resolved);
      resolved[name] = plain[name];
      continue;
    }
    refs.push(e);
    const field = at(e, 'valueFrom', 'fieldRef', 'fieldPath');
    const stand = field === 'metadata.name' ? POD_NAME : SECRET_STAND_INS[name];
    if (stand !== undefined) resolved[name] = stand;
  }
  return { plain, refs, resolved };
}

function portNumber(c: Obj, port: unknown): number {
  if (typeof port === 'number') return port;
  const named = arr(c.ports).find((p) => at(p, 'name') === port);
  return Number(at(named, 'containerPort'));
}

describe.each(TARGETS)('kustomize %s', (target) => {
  const objects = kustomize(path.join(K8S, target));
  const sts = one(objects, 'StatefulSet', 'ledger');
  const c = ledgerContainer(sts);
  const { plain, refs, resolved } = effectiveEnv(objects, c);

  it('every object passes the Kubernetes JSON schema of its kind', async () => {
    expect(objects.length).toBeGreaterThanOrEqual(6);
    for (const o of objects) {
      const Model = await modelFor(o);
      expect(
        () => new Model(o).validate(),
        `${String(o.kind)} ${String(at(o, 'metadata', 'name'))}`,
      ).not.toThrow();
    }
  });

  it('gives each pod its stable name as LEDGER_POD_ID and a headless service for peers', () => {
    const podId = refs.find((e) => e.name === 'LEDGER_POD_ID');
    expect(at(podId, 'valueFrom', 'fieldRef', 'fieldPath')).toBe('metadata.name');
    const headless = one(objects, 'Service', String(at(sts, 'spec', 'serviceName')));
    expect(at(headless, 'spec', 'clusterIP')).toBe('None');
    const podLabels = at(sts, 'spec', 'template', 'metadata', 'labels') as Obj;
    expect(podLabels).toMatchObject(at(sts, 'spec', 'selector', 'matchLabels') as Obj);
    for (const svc of byKind(objects, 'Service')) {
      expect(podLabels).toMatchObject(at(svc, 'spec', 'selector') as Obj);
      for (const p of arr(at(svc, 'spec', 'ports'))) {
        expect(portNumber(c, at(p, 'targetPort'))).toBe(Number(plain.PORT));
      }
    }
    const pdb = one(objects, 'PodDisruptionBudget');
    expect(podLabels).toMatchObject(at(pdb, 'spec', 'selector', 'matchLabels') as Obj);
  });

  it('sets only variables the pod reads, with values it accepts', () => {
    const known = configVariables();
    for (const n of ['LEDGER_PG_URLS', 'LEDGER_ADVERTISE_URL', 'LEDGER_CLUSTER_TOKEN']) {
      expect(known.has(n), n).toBe(true);
    }
    const names = [...Object.keys(plain), ...refs.map((e) => String(e.name))];
    expect(names.filter((n) => !known.has(n) && !RUNTIME_VARIABLES.has(n))).toEqual([]);
    const config = configOf(resolved);
    expect(config.dataDir).toBe(plain.LEDGER_DATA_DIR);
    expect(config.workers).toBeLessThanOrEqual(config.shardCount);
    const cluster = clusterConfigOf(resolved);
    expect(cluster.leaseMs).toBe(Number(plain.LEDGER_LEASE_MS ?? cluster.leaseMs));
    expect(cluster.token).not.toBeNull(); // null would turn forwarding and moves off
  });

  it('advertises each pod at its name on the headless Service, on the server port', () => {
    const entries = arr(c.env).filter(isObj).map((e) => String(e.name));
    const advertise = entries.indexOf('LEDGER_ADVERTISE_URL');
    // a dependent variable expands only when defined before it; after, the pod would see
    // the literal "$(LEDGER_POD_ID)" and every pod would advertise the same bogus host
    expect(advertise).toBeGreaterThan(entries.indexOf('LEDGER_POD_ID'));
    expect(entries.indexOf('LEDGER_POD_ID')).toBeGreaterThanOrEqual(0);
    expect(plain.LEDGER_ADVERTISE_URL).not.toContain('$(');
    const url = new URL(clusterConfigOf(resolved).advertiseUrl ?? '');
    expect(url.hostname).toBe(`${POD_NAME}.${String(at(sts, 'spec', 'serviceName'))}`);
    expect(Number(url.port)).toBe(configOf(resolved).port);
    const headless = one(objects, 'Service', String(at(sts, 'spec', 'serviceName')));
    // peers must reach a pod that is still recovering (not ready) to hand it a shard
    expect(at(headless, 'spec', 'publishNotReadyAddresses')).toBe(true);
  });

  it('probes its port: startup and liveness on /health/live, readiness on /health/ready', () => {
    const port = configOf(resolved).port;
    expect(port).toBe(defaults().port);
    expect(arr(c.ports).map((p) => at(p, 'containerPort'))).toContain(port);
    const probe = (name: string): [unknown, number] => {
      const get = at(c, name, 'httpGet');
      return [at(get, 'path'), portNumber(c, at(get, 'port'))];
    };
    expect(probe('startupProbe')).toEqual(['/health/live', port]);
    expect(probe('livenessProbe')).toEqual(['/health/live', port]);
    expect(probe('readinessProbe')).toEqual(['/health/ready', port]);
    const annotations = at(sts, 'spec', 'template', 'metadata', 'annotations') as Obj;
    expect(annotations['prometheus.io/path']).toBe('/metrics');
    expect(Number(annotations['prometheus.io/port'])).toBe(port);
  });

  it('drains before SIGTERM and leaves time for the drain and the last group commit', () => {
    const command = arr(at(c, 'lifecycle', 'preStop', 'exec', 'command'));
    expect(command[0]).toBe('sleep');
    const sleepS = Number(command[1]);
    const graceS = Number(at(sts, 'spec', 'template', 'spec', 'terminationGracePeriodSeconds'));
    const drainS = 10; // DRAIN_TIMEOUT_MS in src/server.ts
    expect(sleepS).toBeGreaterThan(0);
    expect(graceS).toBeGreaterThanOrEqual(sleepS + drainS + 10);
  });

  it('references secrets, never carries their values', () => {
    expect(byKind(objects, 'Secret')).toEqual([]);
    for (const name of Object.keys(SECRET_STAND_INS)) {
      expect(plain[name], name).toBeUndefined();
      const ref = refs.find((e) => e.name === name);
      expect(at(ref, 'valueFrom', 'secretKeyRef', 'name'), name).toBe('ledger-secrets');
    }
    // without these a pod would run alone on its embedded journal, or could not forward
    for (const name of ['LEDGER_PG_URLS', 'LEDGER_CLUSTER_TOKEN']) {
      const ref = refs.find((e) => e.name === name);
      expect(at(ref, 'valueFrom', 'secretKeyRef', 'optional') ?? false, name).toBe(false);
    }
  });

  it('runs non-root on a read-only root with the data directory on its own volume', () => {
    const podSec = at(sts, 'spec', 'template', 'spec', 'securityContext') as Obj;
    expect(podSec.runAsNonRoot).toBe(true);
    expect(Number(podSec.runAsUser)).toBeGreaterThan(0);
    expect(c.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    const mount = arr(c.volumeMounts).find((m) => at(m, 'mountPath') === plain.LEDGER_DATA_DIR);
    const claims = arr(at(sts, 'spec', 'volumeClaimTemplates')).map((v) =>
      at(v, 'metadata', 'name'),
    );
    expect(claims).toContain(at(mount, 'name'));
  });

  it('sizes workers and heap caps to the container limits', () => {
    const config = configOf(resolved);
    const limits = at(c, 'resources', 'limits') as Obj;
    const requests = at(c, 'resources', 'requests') as Obj;
    expect(config.workers).toBeLessThanOrEqual(quantity(limits.cpu));
    expect(quantity(requests.memory)).toBe(quantity(limits.memory));
    const cap = heapCapMib(plain.NODE_OPTIONS);
    expect(cap).not.toBeNull();
    // every worker thread and the main thread is an isolate with this old-space cap, plus
    // its young generation: the workers' from the actor host, the main thread's from the
    // semi-space flag the image starts node with
    const young = config.workers * WORKER_YOUNG_GENERATION_MB + MAIN_YOUNG_GENERATION_MIB;
    expect(((config.workers + 1) * (cap ?? 0) + young) * 2 ** 20)
      .toBeLessThan(quantity(limits.memory));
  });
});

describe('overlays', () => {
  it('set namespace, replicas, shard count and image tag per environment', () => {
    const dev = kustomize(path.join(K8S, 'overlays/dev'));
    const prod = kustomize(path.join(K8S, 'overlays/prod'));
    const shards = (objs: Obj[]): unknown =>
      at(one(objs, 'ConfigMap', 'ledger-config'), 'data', 'LEDGER_SHARDS');
    expect(shards(dev)).not.toBe(shards(prod));
    for (const objs of [dev, prod]) {
      expect(new Set(objs.map((o) => at(o, 'metadata', 'namespace'))).size).toBe(1);
      expect(String(at(ledgerContainer(one(objs, 'StatefulSet')), 'image'))).not.toMatch(
        /:latest$/,
      );
    }
    expect(at(one(prod, 'StatefulSet'), 'spec', 'replicas')).toBeGreaterThan(1);
  });

  // kubectl is not part of this machine kind's tools; where it exists, the real Kustomize
  // must render exactly what the minimal renderer above does.
  const kubectl = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));
  it.skipIf(kubectl === undefined).each(TARGETS)('kubectl kustomize %s renders the same', (t) => {
    const out = execFileSync(kubectl ?? 'kubectl', ['kustomize', path.join(K8S, t)], {
      encoding: 'utf8',
    });
    const real = parseAllDocuments(out).map((d) => d.toJS() as Obj);
    const key = (o: Obj): string => `${String(o.kind)}/${String(at(o, 'metadata', 'name'))}`;
    const sortByKey = (l: Obj[]): Obj[] => [...l].sort((a, b) => key(a).localeCompare(key(b)));
    expect(sortByKey(kustomize(path.join(K8S, t)))).toEqual(sortByKey(real));
  });
});

describe('Dockerfile', () => {
  /** Instructions with line continuations joined and comments dropped. */
  const lines = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages = lines.reduce<string[][]>((acc, l) => {
    if (/^FROM\s/i.test(l)) acc.push([]);
    acc[acc.length - 1]?.push(l);
    return acc;
  }, []);
  const runtime = stages[stages.length - 1] ?? [];
  const find = (stage: string[], op: string): string[] =>
    stage
      .filter((l) => l.toUpperCase().startsWith(`${op} `))
      .map((l) => l.slice(op.length + 1).trim());

  it('builds in one stage and runs production dependencies and dist/ in another', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(lines.find((l) => l.startsWith('ARG NODE_IMAGE='))).toBe(
      'ARG NODE_IMAGE=node:20-bookworm-slim',
    );
    const build = stages[0] ?? [];
    expect(find(build, 'RUN').join('\n')).toMatch(/npm install[\s\S]*npm run build/);
    expect(find(runtime, 'RUN').join('\n')).toMatch(/npm install --omit=dev/);
    expect(find(runtime, 'COPY')).toContain('--from=build /app/dist ./dist');
    for (const copy of find(build, 'COPY')) {
      const sources = copy
        .split(/\s+/)
        .slice(0, -1)
        .filter((s) => !s.startsWith('--'));
      for (const s of sources) expect(existsSync(path.join(ROOT, s)), s).toBe(true);
    }
  });

  it('runs non-root, on the server port, stops with SIGTERM, starts `cli.js serve`', () => {
    const user = find(runtime, 'USER').at(-1) ?? '';
    expect(user).toMatch(/^[1-9]\d*(:\d+)?$/); // numeric, so runAsNonRoot can verify it
    expect(find(runtime, 'EXPOSE')).toEqual([String(defaults().port)]);
    expect(find(runtime, 'STOPSIGNAL')).toEqual(['SIGTERM']);
    const entry = JSON.parse(find(runtime, 'ENTRYPOINT')[0] ?? '[]') as string[];
    const cmd = JSON.parse(find(runtime, 'CMD')[0] ?? '[]') as string[];
    expect([...entry, ...cmd]).toEqual(['node', ...POD_NODE_FLAGS, 'dist/src/cli.js', 'serve']);
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as
      { scripts: Record<string, string> }).scripts;
    // npm start and the benchmarks run node as the image does
    expect(scripts.start).toContain(`node ${POD_NODE_FLAGS.join(' ')} dist/src/cli.js serve`);
    expect(scripts.bench).toContain(`node ${POD_NODE_FLAGS.join(' ')} dist/bench/run.js`);
    // and so does the `ledger` command, through its shebang
    const shebang = readFileSync(path.join(ROOT, 'src/cli.ts'), 'utf8').split('\n')[0];
    expect(shebang).toBe(`#!/usr/bin/env -S node ${POD_NODE_FLAGS.join(' ')}`);
    const tsconfig = readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8');
    expect(tsconfig).toMatch(/"outDir":\s*"dist"/);
  });

  it('keeps local state, secrets and dependencies out of the build context', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const p of ['node_modules', 'dist', 'data', '.env', '.git'])
      expect(ignored, p).toContain(p);
  });
});
