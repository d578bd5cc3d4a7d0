# syntax=docker/dockerfile:1
# The ledger pod image: TypeScript compiled in a throwaway stage, then only production
# dependencies and dist/ in a small glibc image, run as an unprivileged user. No secrets here:
# LEDGER_ADMIN_TOKEN, LEDGER_CLUSTER_TOKEN and LEDGER_PG_URLS arrive as environment at run time.

# Debian bookworm (glibc 2.36): the registry build of uWebSockets.js we depend on
# (@trufflesuite/uws-js-unofficial@20.30.0-unofficial.0) loads there; alpine (musl) and newer
# builds needing glibc 2.38 do not.
ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Manifests first, so the dependency layer is reused until package*.json change.
COPY package.json package-lock.json ./
# `npm install` with the committed lock, not `npm ci`: msgpackr's optional native helpers for
# other platforms are absent from the lock (the registry this was built against lacks them),
# which `npm ci` treats as a lock out of sync. Versions still come from the lock.
RUN npm install --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY protocol ./protocol
COPY shards ./shards
COPY persistence ./persistence
COPY src ./src
COPY bench ./bench
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
# A fixed uid/gid: Kubernetes' runAsUser/fsGroup (deploy/k8s/base) name the same numbers.
RUN groupadd --system --gid 10001 ledger \
 && useradd --system --uid 10001 --gid ledger --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin ledger \
 && mkdir -p /var/lib/ledger \
 && chown ledger:ledger /var/lib/ledger
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
# Runtime dependencies only (no typescript, vitest, tsx); the cache is not part of the image.
RUN npm install --omit=dev --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The data directory is the only path the pod writes: layout.json, tenants.json, journal and
# snapshots in embedded mode; with LEDGER_PG_URLS tenants and journal live in PostgreSQL, and
# with LEDGER_REDIS_URL snapshots in Redis. Kubernetes mounts a volume here, root stays read-only.
ENV LEDGER_DATA_DIR=/var/lib/ledger \
    PORT=8080
VOLUME ["/var/lib/ledger"]
USER 10001:10001
EXPOSE 8080
# cli.ts drains in-flight requests, flushes the last group commit and ends the pod's lease (so
# the other pods claim its shards at once) on SIGTERM.
STOPSIGNAL SIGTERM
# For plain `docker run`; Kubernetes uses its own probes (deploy/k8s/base/statefulset.yaml).
# node's fetch, because the slim image has neither curl nor wget. Start period covers replay.
HEALTHCHECK --interval=10s --timeout=3s --start-period=120s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# --max-semi-space-size: the gateway's young generation; --v8-pool-size=0: V8's helper
# threads sized to the cores (see src/node-flags.ts).
# Node as PID 1 is fine here: cli.ts installs its own SIGTERM/SIGINT handlers and the pod
# spawns no child processes (shards run in worker threads).
ENTRYPOINT ["node", "--max-semi-space-size=64", "--v8-pool-size=0", "dist/src/cli.js"]
CMD ["serve"]
