# toolplane: `make run` runs the whole system on embedded defaults; `make test` runs every test.
SHELL := /bin/bash
BIN := node_modules/.bin
PROTOS := $(shell find proto -name '*.proto')
NODE_TEST := node --test --test-timeout=300000 --test-reporter=spec

.PHONY: install gen build lint typecheck test test-node test-python run bench soak helm-check clean

node_modules/.install-stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

install: node_modules/.install-stamp

# Generated code is rebuilt from proto/ and never edited by hand.
generated/.stamp: node_modules/.install-stamp $(PROTOS) proto/buf.yaml proto/buf.gen.yaml
	rm -rf generated
	cd proto && ../$(BIN)/buf lint && ../$(BIN)/buf generate
	touch $@

gen: generated/.stamp

build: gen
	rm -rf dist
	$(BIN)/tsc -p tsconfig.json

typecheck: gen
	$(BIN)/tsc -p tsconfig.json --noEmit

lint: install
	$(BIN)/biome check .

run: build
	node dist/services/runtime/src/run-all.js

test: lint build test-node test-python

test-node: build
	$(NODE_TEST) $$(find dist -name '*.test.js' | sort)

# The Python client's protobuf modules, generated from proto/ with protoc (clients/python/generate.py).
python-client:
	/usr/bin/python3 clients/python/generate.py

test-python: build python-client
	/usr/bin/python3 -m pytest -q test/python
	cd clients/python && /usr/bin/python3 -m pytest -q -rs -p no:cacheprovider tests

clean:
	rm -rf dist generated node_modules/.install-stamp
