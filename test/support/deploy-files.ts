// Readers for deploy/: YAML documents, a minimal Kustomize renderer, PromQL metric extraction
// and Prometheus text parsing, for test/deploy.test.ts. Reads files only; never writes.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parser as promqlParser } from '@prometheus-io/lezer-promql';
import { parseAllDocuments } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const DEPLOY = path.join(ROOT, 'deploy');

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks a path of keys / indexes; undefined as soon as one step is missing. */
export function at(v: unknown, ...keys: (string | number)[]): unknown {
  let cur: unknown = v;
  for (const k of keys) {
    if (typeof k === 'number') cur = Array.isArray(cur) ? cur[k] : undefined;
    else cur = isObj(cur) ? cur[k] : undefined;
  }
  return cur;
}

export function arr(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

/** Every YAML document of a file; any parse error or warning fails with the file's name. */
export function readYaml(file: string, opts: { merge?: boolean } = {}): unknown[] {
  const text = readFileSync(file, 'utf8');
  const docs = parseAllDocuments(text, { merge: opts.merge ?? false, uniqueKeys: true });
  const list = Array.isArray(docs) ? docs : [docs];
  const out: unknown[] = [];
  for (const doc of list) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) {
      throw new Error(`${path.relative(ROOT, file)}: ${problems.map((e) => e.message).join('; ')}`);
    }
    const value: unknown = doc.toJS();
    if (value !== null && value !== undefined) out.push(value);
  }
  return out;
}

export function readYamlOne(file: string, opts: { merge?: boolean } = {}): Obj {
  const docs = readYaml(file, opts);
  const doc = docs[0];
  if (docs.length !== 1 || !isObj(doc)) throw new Error(`${file}: expected one YAML mapping`);
  return doc;
}

/** Files under a directory, recursively, as absolute paths. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) out.push(...listFiles(full));
    else out.push(full);
  }
  return out.sort();
}

// --- a minimal Kustomize ----------------------------------------------------------------------

/** The kustomization fields our manifests use; any other field fails the render loudly. */
const KUSTOMIZE_FIELDS = new Set([
  'apiVersion',
  'kind',
  'resources',
  'namespace',
  'replicas',
  'images',
  'patches',
]);

/** The kinds Kustomize's `replicas` field scales (a Service of the same name is left alone). */
const SCALABLE_KINDS = new Set([
  'Deployment',
  'StatefulSet',
  'ReplicaSet',
  'ReplicationController',
]);

function clone<T>(v: T): T {
  return structuredClone(v);
}

/**
 * Strategic merge as Kubernetes does it for the fields we patch: maps merge key by key; lists
 * of objects that all carry `name` merge by name (containers, env, volumes, claim templates);
 * other lists are replaced. Enough for our overlays, checked against `kubectl kustomize`.
 */
export function strategicMerge(base: unknown, patch: unknown): unknown {
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) out[k] = k in base ? strategicMerge(base[k], v) : v;
    return out;
  }
  const named = (l: unknown[]): boolean => l.every((x) => isObj(x) && typeof x.name === 'string');
  const namedInTemplates = (l: unknown[]): boolean =>
    l.every((x) => typeof at(x, 'metadata', 'name') === 'string');
  if (Array.isArray(base) && Array.isArray(patch)) {
    const keyOf =
      named(base) && named(patch)
        ? (x: unknown) => at(x, 'name')
        : namedInTemplates(base) && namedInTemplates(patch)
          ? (x: unknown) => at(x, 'metadata', 'name')
          : null;
    if (keyOf === null) return clone(patch);
    const out = base.map((x) => clone(x));
    for (const item of patch) {
      const i = out.findIndex((x) => keyOf(x) === keyOf(item));
      if (i >= 0) out[i] = strategicMerge(out[i], item);
      else out.push(clone(item));
    }
    return out;
  }
  return clone(patch);
}

function setImages(obj: Obj, images: Obj[]): void {
  const containers = arr(at(obj, 'spec', 'template', 'spec', 'containers'));
  for (const c of containers) {
    if (!isObj(c) || typeof c.image !== 'string') continue;
    const name = c.image.replace(/[:@].*$/, '');
    const rule = images.find((i) => i.name === name);
    if (rule === undefined) continue;
    const newName = typeof rule.newName === 'string' ? rule.newName : name;
    if (typeof rule.digest === 'string') c.image = `${newName}@${rule.digest}`;
    else c.image = `${newName}:${String(rule.newTag ?? 'latest')}`;
  }
}

/** Renders a kustomization directory into its objects, like `kubectl kustomize <dir>`. */
export function kustomize(dir: string): Obj[] {
  const k = readYamlOne(path.join(dir, 'kustomization.yaml'));
  const unknown = Object.keys(k).filter((f) => !KUSTOMIZE_FIELDS.has(f));
  if (unknown.length > 0) throw new Error(`${dir}: unsupported kustomization fields ${unknown}`);
  let objects: Obj[] = [];
  for (const r of arr(k.resources)) {
    const full = path.join(dir, String(r));
    if (statSync(full).isDirectory()) objects.push(...kustomize(full));
    else objects.push(...readYaml(full).filter(isObj));
  }
  for (const p of arr(k.patches)) {
    if (!isObj(p) || typeof p.path !== 'string' || Object.keys(p).length !== 1) {
      throw new Error(`${dir}: only file patches ({path}) are supported`);
    }
    for (const patch of readYaml(path.join(dir, p.path)).filter(isObj)) {
      const i = objects.findIndex(
        (o) => o.kind === patch.kind && at(o, 'metadata', 'name') === at(patch, 'metadata', 'name'),
      );
      if (i < 0) throw new Error(`${dir}/${p.path}: patch target not found`);
      objects[i] = strategicMerge(objects[i], patch) as Obj;
    }
  }
  for (const r of arr(k.replicas).filter(isObj)) {
    const o = objects.find(
      (x) => at(x, 'metadata', 'name') === r.name && SCALABLE_KINDS.has(String(x.kind)),
    );
    if (o === undefined) throw new Error(`${dir}: replicas target ${String(r.name)} not found`);
    (o.spec as Obj).replicas = r.count;
  }
  const images = arr(k.images).filter(isObj);
  if (typeof k.namespace === 'string') {
    objects = objects.map((o) => ({
      ...o,
      metadata: { ...(o.metadata as Obj), namespace: k.namespace },
    }));
  }
  for (const o of objects) setImages(o, images);
  return objects;
}

// --- PromQL -----------------------------------------------------------------------------------

export interface Selector {
  metric: string;
  matchers: { label: string; op: string; value: string }[];
}

/** Grafana's variables replaced by values PromQL accepts, so panel queries parse. */
export function expandGrafanaVariables(expr: string): string {
  return expr
    .replace(/\$__rate_interval|\$__interval|\$__range/g, '5m')
    .replace(/\$\{?[A-Za-z_]\w*\}?/g, '.*');
}

/**
 * Parses one PromQL expression with Prometheus' own grammar (lezer-promql) and returns its
 * vector selectors; throws when the expression has a syntax error.
 */
export function promqlSelectors(expr: string): Selector[] {
  const tree = promqlParser.parse(expr);
  const errors: number[] = [];
  const out: Selector[] = [];
  tree.iterate({
    enter(node) {
      if (node.type.isError) errors.push(node.from);
      if (node.name !== 'VectorSelector') return;
      const sel: Selector = { metric: '', matchers: [] };
      const c = node.node.cursor();
      c.firstChild();
      do {
        if (c.name === 'Identifier') sel.metric = expr.slice(c.from, c.to);
        if (c.name === 'LabelMatchers') {
          for (const m of c.node.getChildren('UnquotedLabelMatcher')) {
            const label = m.getChild('LabelName');
            const op = m.getChild('MatchOp');
            const value = m.getChild('StringLiteral');
            if (label === null || op === null || value === null) continue;
            sel.matchers.push({
              label: expr.slice(label.from, label.to),
              op: expr.slice(op.from, op.to),
              value: JSON.parse(expr.slice(value.from, value.to).replace(/^'|'$/g, '"')) as string,
            });
          }
        }
      } while (c.nextSibling());
      out.push(sel);
    },
  });
  if (errors.length > 0) throw new Error(`PromQL syntax error at ${errors[0]} in: ${expr}`);
  return out;
}

// --- Prometheus text format ------------------------------------------------------------------

export interface Scrape {
  /**
   * Series names the pod declares (`# TYPE`), histogram and summary series included
   * (x_bucket, x_sum, x_count), with the label sets of the samples it printed. prom-client
   * prints no sample for a labelled child before its first observation, so a declared
   * family may have no label sets yet.
   */
  samples: Map<string, Record<string, string>[]>;
}

const TYPE_SUFFIXES: Readonly<Record<string, readonly string[]>> = {
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** Parses the text exposition format: every declared series and every sample's labels. */
export function parseExposition(text: string): Scrape {
  const samples = new Map<string, Record<string, string>[]>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (\w+)$/.exec(line);
    if (type !== null) {
      for (const suffix of TYPE_SUFFIXES[type[2] ?? ''] ?? [''])
        samples.set(`${type[1]}${suffix}`, []);
    }
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+/.exec(line);
    if (m === null) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[3] ?? '').matchAll(/([a-zA-Z_]\w*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] ?? ''] = l[2] ?? '';
    }
    const name = m[1] ?? '';
    const list = samples.get(name) ?? [];
    list.push(labels);
    samples.set(name, list);
  }
  return { samples };
}
