// Alerts, recording rules and dashboards against a REAL pod: starts one in-process, scrapes
// /metrics, and checks that every metric and label value any rule or panel queries is one the
// pod exports. Every PromQL expression is parsed with Prometheus' own grammar (lezer-promql).

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ERRORS } from '../protocol/errors.js';
import { OUTCOMES, ROUTES, type Metrics } from '../src/metrics.js';
import { startPod, type Pod } from './api-support.js';
import {
  arr,
  at,
  DEPLOY,
  expandGrafanaVariables,
  isObj,
  listFiles,
  parseExposition,
  promqlSelectors,
  readYamlOne,
  type Obj,
  type Scrape,
  type Selector,
} from './support/deploy-files.js';

const PROM = path.join(DEPLOY, 'prometheus');
const POD_RULES = path.join(PROM, 'rules.yml');
const KUBE_RULES = path.join(PROM, 'rules-kubernetes.yml');
/** Series Prometheus makes itself for every target; not exported by the pod. */
const PROMETHEUS_SERIES = new Set(['up']);
/**
 * kube-state-metrics series used by rules-kubernetes.yml (readiness is the kubelet's
 * knowledge, not the pod's). Checked by name against this list only.
 */
const KUBE_STATE_METRICS = new Set([
  'kube_pod_status_ready',
  'kube_statefulset_status_replicas_ready',
  'kube_statefulset_replicas',
]);
/** Labels Prometheus or service discovery attach at scrape time. */
const TARGET_LABELS = new Set(['job', 'instance', 'pod', 'namespace', 'le']);

interface Rule {
  file: string;
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Obj;
  annotations?: Obj;
}

function rulesOf(file: string): Rule[] {
  const doc = readYamlOne(file);
  const out: Rule[] = [];
  for (const group of arr(doc.groups)) {
    expect(typeof at(group, 'name')).toBe('string');
    for (const r of arr(at(group, 'rules')).filter(isObj)) {
      out.push({ ...(r as unknown as Rule), file: path.basename(file) });
    }
  }
  return out;
}

interface PanelQuery {
  where: string;
  expr: string;
}

function dashboards(): { file: string; json: Obj }[] {
  return listFiles(path.join(DEPLOY, 'grafana/dashboards'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ file: path.basename(f), json: JSON.parse(readFileSync(f, 'utf8')) as Obj }));
}

function panelsOf(dash: Obj): Obj[] {
  const out: Obj[] = [];
  for (const p of arr(dash.panels).filter(isObj)) out.push(p, ...arr(p.panels).filter(isObj));
  return out;
}

/** Every PromQL query of the dashboards: panel targets and the variables' label_values(). */
function dashboardQueries(): PanelQuery[] {
  const out: PanelQuery[] = [];
  for (const { file, json } of dashboards()) {
    for (const p of panelsOf(json)) {
      for (const t of arr(p.targets)) {
        out.push({ where: `${file} "${String(p.title)}"`, expr: String(at(t, 'expr')) });
      }
    }
    for (const v of arr(at(json, 'templating', 'list'))) {
      const q = String(at(v, 'query', 'query') ?? at(v, 'query'));
      const m = /^label_values\((.*),\s*\w+\)$/.exec(q);
      out.push({ where: `${file} variable ${String(at(v, 'name'))}`, expr: m?.[1] ?? q });
    }
  }
  return out;
}

const podRules = rulesOf(POD_RULES);
const kubeRules = rulesOf(KUBE_RULES);
const recorded = new Set(podRules.flatMap((r) => (r.record === undefined ? [] : [r.record])));

/**
 * Every outcome a shard move is observed with: the parameter type of Metrics.move, written as
 * a record so the compiler refuses a missing or an extra key (a single pod never moves a shard,
 * so the scrape cannot show them).
 */
const MOVE_OUTCOMES: Readonly<Record<Parameters<Metrics['move']>[1], true>> = {
  ok: true,
  aborted: true,
  failed: true,
};

/**
 * Label values the pod prints only after a first observation: bound up front (src/metrics.ts
 * binds every route x outcome and every error code at start), or a closed set of values in
 * src/metrics.ts's signatures (move outcomes).
 */
const ROUTE_LABELS = { route: ROUTES, outcome: OUTCOMES };
const MOVE_LABELS = { outcome: Object.keys(MOVE_OUTCOMES) };
const BOUND_LABELS: Readonly<Record<string, Readonly<Record<string, readonly string[]>>>> = {
  payments_processed_total: ROUTE_LABELS,
  payment_response_time_seconds_bucket: ROUTE_LABELS,
  payment_response_time_seconds_sum: ROUTE_LABELS,
  payment_response_time_seconds_count: ROUTE_LABELS,
  payment_errors_total: { code: Object.keys(ERRORS) },
  ledger_shard_move_seconds_bucket: MOVE_LABELS,
  ledger_shard_move_seconds_sum: MOVE_LABELS,
  ledger_shard_move_seconds_count: MOVE_LABELS,
};

/** Problems with one selector against the scrape: unknown metric, or a label value never seen. */
function selectorProblems(sel: Selector, scrape: Scrape): string[] {
  if (recorded.has(sel.metric) || PROMETHEUS_SERIES.has(sel.metric)) return [];
  const series = scrape.samples.get(sel.metric);
  if (series === undefined) return [`metric ${sel.metric} is not exported`];
  const problems: string[] = [];
  for (const m of sel.matchers) {
    if (TARGET_LABELS.has(m.label) || m.op === '!=' || m.op === '!~') continue;
    const re = new RegExp(
      `^(?:${m.op === '=' ? m.value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') : m.value})$`,
    );
    const seen = series.map((labels) => labels[m.label] ?? '');
    const bound = BOUND_LABELS[sel.metric]?.[m.label] ?? [];
    if (![...seen, ...bound].some((v) => re.test(v))) {
      problems.push(`${sel.metric}{${m.label}${m.op}"${m.value}"} matches no exported series`);
    }
  }
  return problems;
}

describe('Prometheus rules', () => {
  it('parse; every alert has severity, summary, description, and a README runbook', () => {
    const readme = readFileSync(path.join(DEPLOY, 'README.md'), 'utf8');
    const alerts = [...podRules, ...kubeRules].filter((r) => r.alert !== undefined);
    expect(alerts.length).toBeGreaterThanOrEqual(10);
    for (const r of alerts) {
      const name = r.alert ?? '';
      expect(() => promqlSelectors(r.expr), name).not.toThrow();
      expect(['warning', 'critical'], name).toContain(at(r.labels, 'severity'));
      for (const a of ['summary', 'description', 'runbook']) {
        expect(String(at(r.annotations, a) ?? '').length, `${name} ${a}`).toBeGreaterThan(20);
      }
      expect(readme, `README section for ${name}`).toContain(`### ${name}`);
      expect(String(at(r.annotations, 'runbook'))).toContain(`#${name.toLowerCase()}`);
    }
    expect(new Set(alerts.map((r) => r.alert)).size).toBe(alerts.length);
  });

  it('record TPS and p50/p95/p99 under level:metric:operation names', () => {
    for (const r of podRules.filter((x) => x.record !== undefined)) {
      expect(r.record).toMatch(/^[a-z_]+:[a-z0-9_]+:[a-z0-9_]+$/);
      expect(() => promqlSelectors(r.expr), r.record).not.toThrow();
    }
    for (const q of ['p50_5m', 'p95_5m', 'p99_5m']) {
      expect(recorded).toContain(`ledger:payment_latency_seconds:${q}`);
    }
    expect(recorded).toContain('ledger:journal_rows:rate1m');
  });

  it('Kubernetes-only rules use kube-state-metrics series only', () => {
    for (const r of kubeRules) {
      for (const sel of promqlSelectors(r.expr)) expect(KUBE_STATE_METRICS).toContain(sel.metric);
    }
  });

  it('the local Prometheus loads the rules and scrapes job "ledger" on /metrics', () => {
    const conf = readYamlOne(path.join(PROM, 'prometheus.yml'));
    expect(arr(conf.rule_files)).toEqual(['/etc/prometheus/rules.yml']);
    const job = arr(conf.scrape_configs).find((j) => at(j, 'job_name') === 'ledger');
    expect(at(job, 'metrics_path')).toBe('/metrics');
    const k8s = readYamlOne(path.join(PROM, 'scrape-kubernetes.yml'));
    expect(arr(k8s.scrape_configs).map((j) => at(j, 'job_name'))).toEqual(['ledger']);
  });
});

describe('Grafana', () => {
  it('dashboards parse, have unique uids and query the provisioned datasource', () => {
    const ds = readYamlOne(path.join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yaml'));
    const uid = at(ds, 'datasources', 0, 'uid');
    const all = dashboards();
    expect(all.length).toBeGreaterThanOrEqual(2);
    expect(new Set(all.map((d) => d.json.uid)).size).toBe(all.length);
    for (const { file, json } of all) {
      const panels = panelsOf(json).filter((p) => p.type !== 'row');
      expect(panels.length, file).toBeGreaterThanOrEqual(8);
      for (const p of panels) {
        expect(at(p, 'datasource', 'uid'), `${file} ${String(p.title)}`).toBe(uid);
        expect(arr(p.targets).length, `${file} ${String(p.title)}`).toBeGreaterThan(0);
      }
    }
    for (const q of dashboardQueries()) {
      expect(() => promqlSelectors(expandGrafanaVariables(q.expr)), q.where).not.toThrow();
    }
  });

  it('provisioning loads the dashboards folder that compose mounts', () => {
    const prov = readYamlOne(path.join(DEPLOY, 'grafana/provisioning/dashboards/ledger.yaml'));
    expect(at(prov, 'providers', 0, 'options', 'path')).toBe('/var/lib/grafana/dashboards');
  });
});

describe('metrics used by rules and dashboards, against a running pod', () => {
  let pod: Pod;
  let scrape: Scrape;

  beforeAll(async () => {
    pod = await startPod();
    // Some traffic, so the labelled families print real samples: a payment, a rejection.
    const client = await pod.tenant('deploy-metrics');
    await client.createAccount({ id: 'a', currencyCode: 'USD', allowNegative: true });
    await client.createAccount({ id: 'b', currencyCode: 'USD' });
    await client.transfer({
      id: 't1',
      fromAccountId: 'a',
      toAccountId: 'b',
      amount: '1.00',
      currencyCode: 'USD',
    });
    await client.transfer({
      id: 't2',
      fromAccountId: 'b',
      toAccountId: 'a',
      amount: '9.00',
      currencyCode: 'USD',
    });
    const reply = await fetch(`${pod.url}/metrics`);
    expect(reply.status).toBe(200);
    scrape = parseExposition(await reply.text());
  });
  afterAll(async () => {
    await pod.stop();
  });

  it('the pod exports the ledger families, histograms with _bucket/_sum/_count', () => {
    const histograms = [
      'payment_response_time_seconds',
      'ledger_group_commit_seconds',
      'ledger_shard_move_seconds',
    ];
    for (const h of histograms) {
      for (const s of ['_bucket', '_sum', '_count'])
        expect(scrape.samples.has(h + s), h + s).toBe(true);
    }
    const processed = scrape.samples.get('payments_processed_total') ?? [];
    expect(processed).toContainEqual({ route: 'http:transfer', outcome: 'ok' });
    expect(processed).toContainEqual({ route: 'http:transfer', outcome: 'rejected' });
    expect(scrape.samples.get('payment_errors_total')).toContainEqual({
      code: 'insufficient_funds',
    });
  });

  it('serves the probe paths the manifests use', async () => {
    expect((await fetch(`${pod.url}/health/live`)).status).toBe(200);
    expect((await fetch(`${pod.url}/health/ready`)).status).toBe(200);
  });

  it('exports every metric and label value an alert or recording rule uses', () => {
    const problems = podRules.flatMap((r) =>
      promqlSelectors(r.expr).flatMap((s) =>
        selectorProblems(s, scrape).map((p) => `${r.alert ?? r.record}: ${p}`),
      ),
    );
    expect(problems).toEqual([]);
  });

  it('exports every metric and label value a dashboard panel uses', () => {
    const queries = dashboardQueries();
    expect(queries.length).toBeGreaterThan(30);
    const problems = queries.flatMap((q) =>
      promqlSelectors(expandGrafanaVariables(q.expr)).flatMap((s) =>
        selectorProblems(s, scrape).map((p) => `${q.where}: ${p}`),
      ),
    );
    expect(problems).toEqual([]);
  });

  it('watches every ledger_ family the pod exports in a rule or a panel', () => {
    const exprs = [
      ...podRules.map((r) => r.expr),
      ...dashboardQueries().map((q) => expandGrafanaVariables(q.expr)),
    ];
    const used = new Set(exprs.flatMap((e) => promqlSelectors(e).map((sel) => sel.metric)));
    const family = (series: string): string => series.replace(/_(bucket|sum|count)$/, '');
    const families = new Set([...scrape.samples.keys()].filter((n) => n.startsWith('ledger_')));
    const watched = new Set([...used].map(family));
    const unwatched = [...families].filter((n) => !watched.has(family(n)));
    expect(unwatched).toEqual([]);
  });

  it('would catch a metric the pod does not export', () => {
    const [sel] = promqlSelectors('rate(payment_amount_minor_total{currency="USD"}[5m])');
    expect(selectorProblems(sel as Selector, scrape)).toEqual([
      'metric payment_amount_minor_total is not exported',
    ]);
    const [bad] = promqlSelectors('payment_errors_total{code="no_such_code"}');
    expect(selectorProblems(bad as Selector, scrape)).toHaveLength(1);
  });
});
