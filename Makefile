# kinfer: common tasks. Recipes call npm scripts so `npm run X` and `make X` agree.
IMAGE ?= ghcr.io/kinfer/kinfer:0.1.0
DOCKER ?= docker

.PHONY: build test bench manifests verify image

build:
	npm run build

test:
	npm test

bench:
	npm run bench

# Regenerate manifests/ and functions/*/func.yaml from functions/*/index.ts, then schema-check them.
manifests: build
	node dist/knative/cli-generate.js

# Fail on drift (committed manifests differ from a fresh generation) or on any CRD schema error.
verify:
	npx vitest run knative/generate.test.ts knative/validate.test.ts functions/define.test.ts test/dockerfile.test.ts

image:
	$(DOCKER) build -t $(IMAGE) .

include native/native.mk
