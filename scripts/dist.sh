#!/usr/bin/env bash
# `make dist`: the release archive, from what `make component host plugin edge` left in dist/.
#
#   dist/kinesis-output-<version>-<target>.tar.gz       (and .sha256 beside it)
#     kinesis-output-<version>-<target>/
#       bin/kinesis-ship                          stripped, the components inside
#       lib/fluent-bit/out_kinesis_wasm.so        stripped, the sink component inside
#       share/kinesis-output/*.wasm               the three components (sink, proxy, command)
#       share/kinesis-output/examples/            configurations
#       share/kinesis-output/deploy/              Dockerfile, plugins file, Kubernetes, Helm
#       share/kinesis-output/edge/                the edge bundle (Workers, Deno) and its serve
#       share/doc/kinesis-output/                 README, docs, LICENSE, THIRD-PARTY-NOTICES
#       SHA256SUMS                                every file above
#   dist/kinesis-output-<version>-<target>-debug.tar.gz  the programs' symbols (*.debug),
#                                                         named by each file's .gnu_debuglink
#
# The packing is reproducible (names sorted, owner root, modes normalised, times the last
# commit's); the programs themselves carry the paths they were built at.
set -euo pipefail

version=$1
target=$2
name="kinesis-output-$version-$target"
stage="target/dist-stage/$name"
debug="target/dist-stage/$name-debug"

rm -rf target/dist-stage
mkdir -p "$stage/bin" "$stage/lib/fluent-bit" "$stage/share/kinesis-output" \
  "$stage/share/doc/kinesis-output/docs" "$debug"

# Stripped, with the symbols in a separate file that the stripped one names.
split_debug() {
  local from=$1 to=$2 debug_file
  debug_file="$debug/$(basename "$to").debug"
  objcopy --only-keep-debug "$from" "$debug_file"
  objcopy --strip-all --add-gnu-debuglink="$debug_file" "$from" "$to"
}
split_debug dist/kinesis-ship "$stage/bin/kinesis-ship"
split_debug dist/out_kinesis_wasm.so "$stage/lib/fluent-bit/out_kinesis_wasm.so"

cp dist/kinesis_output.wasm dist/kinesis_output_proxy.wasm dist/kinesis_output_command.wasm \
  "$stage/share/kinesis-output/"
# The edge bundle (`make edge`): the Worker, the Deno entry and their serve.
[ -f dist/edge/worker.js ] || { echo "dist/edge is missing: run make edge"; exit 1; }
cp -r dist/edge "$stage/share/kinesis-output/edge"
# The examples and deployment recipes as committed (not the generated log file of `make logs`).
git ls-files -z examples deploy |
  tar --null -T - -cf - | tar -C "$stage/share/kinesis-output" -xf -
cp README.md LICENSE "$stage/share/doc/kinesis-output/"
cp docs/*.md "$stage/share/doc/kinesis-output/docs/"
python3 scripts/third-party-notices.py "$target" > "$stage/share/doc/kinesis-output/THIRD-PARTY-NOTICES"

(cd "$stage" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)

epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
pack() {
  tar --sort=name --owner=0 --group=0 --numeric-owner --mode='u+rwX,go=rX' --mtime="@$epoch" \
    -C target/dist-stage -cf - "$1" |
    gzip -n -9 > "dist/$1.tar.gz"
}
pack "$name"
pack "$name-debug"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo "dist/$name.tar.gz: $(stat -c %s "dist/$name.tar.gz") bytes"
echo "  bin/kinesis-ship $(stat -c %s "$stage/bin/kinesis-ship") bytes, lib/fluent-bit/out_kinesis_wasm.so $(stat -c %s "$stage/lib/fluent-bit/out_kinesis_wasm.so") bytes (stripped)"
echo "dist/$name-debug.tar.gz: $(stat -c %s "dist/$name-debug.tar.gz") bytes"
