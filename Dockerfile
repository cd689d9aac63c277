# syntax=docker/dockerfile:1
# kinfer production image: `make image`. Multi-stage: the build stage has dev
# dependencies and a C++ toolchain (node-gyp, for the native addon); the runtime
# stage has production dependencies only and runs as the non-root `node` user (uid 1000,
# given by number so a pod with runAsNonRoot can verify it).
# No Docker engine runs on the project's machines: this file is checked by
# test/dockerfile.test.ts (copied paths exist, the entrypoint is the built CLI),
# not built there.

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 g++ make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# onnxruntime-node ships its CPU binaries in the package; skip its optional GPU download.
ENV ONNXRUNTIME_NODE_INSTALL=skip
COPY package.json package-lock.json ./
# --ignore-scripts: npm ci runs the root package's own `install` script (node native/build.mjs),
# and native/ is not copied yet; the addon is built --strict below. The dependencies' install
# scripts are not needed: onnxruntime-node's is the optional GPU download (skipped anyway),
# esbuild's only checks its binary (its API finds @esbuild/linux-x64 without it), protobufjs's
# only checks versions.
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY . .
RUN npm run build \
 && node native/build.mjs --strict \
 && npm prune --omit=dev

FROM ${NODE_IMAGE} AS runtime
# GLIBC_TUNABLES: glibc's malloc asks for transparent huge pages (bookworm's glibc 2.36; the node's
# THP mode must be madvise or always). ONNX Runtime's session create page-faults half as often:
# ocr-det's create 175 -> 94 ms, spawn -> ready 426 -> 355 ms; batch-1 runs of the bench MLP ~1.05x.
# Set GLIBC_TUNABLES= (empty) to turn it off. README: Performance fixes.
ENV NODE_ENV=production \
    PORT=8080 \
    KINFER_CACHE_DIR=/tmp/kinfer-cache \
    GLIBC_TUNABLES=glibc.malloc.hugetlb=1
WORKDIR /app
COPY --from=build --chown=node:node /app/package.json ./package.json
COPY --from=build --chown=node:node /app/node_modules ./node_modules
COPY --from=build --chown=node:node /app/dist ./dist
COPY --from=build --chown=node:node /app/native/build/Release/kinfer_native.node ./native/build/Release/kinfer_native.node
# The echo function's model folder (functions/echo: storageUri file:///opt/kinfer/models/echo).
COPY --chown=node:node functions/echo/model /opt/kinfer/models/echo
# KServe's model agent and storage initializer write here; writable by the server user.
RUN mkdir -p /mnt/models && chown node:node /mnt/models
USER 1000:1000
EXPOSE 8080
# Exec form: node is PID 1 and receives SIGTERM itself (the server drains, then exits 0).
# dist/bundle/main.cjs is the esbuild bundle of dist/cli/main.js (scripts/bundle.mjs): a faster cold start.
CMD ["node", "dist/bundle/main.cjs", "serve"]
