#!/usr/bin/env python3
"""Third-party notices for what the shipped programs link in.

Asks `cargo tree` (from Cargo.lock) for the normal dependencies, not dev or build ones, with
the features a build of each turns on: kinesis-ship and the Fluent Bit plugin for the host
target, the component for wasm32-wasip2; `cargo metadata` says where each crate's files are. For every crate reached it writes its name, version, licence expression and
source, then the text of each licence or notice file the crate ships (a text printed once,
later crates with the same text refer to it). Fails if a crate states no licence at all.

    third-party-notices.py HOST_TARGET > THIRD-PARTY-NOTICES
"""
import hashlib
import json
import os
import subprocess
import sys

ROOTS = [("kinesis-ship", None), ("flb-out-kinesis-wasm", None), ("kinesis-output", "wasm32-wasip2")]
LICENCE_PREFIXES = ("license", "licence", "copying", "notice", "copyright", "unlicense")


def metadata(target):
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


def reached(meta, root_name, target):
    """The crates from a registry that a build of `root_name` for `target` links."""
    tree = subprocess.run(
        ["cargo", "tree", "--locked", "-e", "normal", "-p", root_name, "--target", target, "--prefix", "none", "-f", "{p}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    wanted = set()
    for line in tree.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("v"):
            wanted.add((parts[0], parts[1][1:]))
    return {
        p["id"]: p
        for p in meta["packages"]
        if p["source"] is not None and (p["name"], p["version"]) in wanted
    }


def licence_files(package):
    folder = os.path.dirname(package["manifest_path"])
    named = package.get("license_file")
    files = sorted(
        f for f in os.listdir(folder) if f.lower().startswith(LICENCE_PREFIXES) and os.path.isfile(os.path.join(folder, f))
    )
    if named and os.path.basename(named) not in files:
        files.append(named)
    return [(f, os.path.join(folder, f)) for f in files]


def main():
    host = sys.argv[1]
    crates = {}
    for name, target in ROOTS:
        target = target or host
        crates.update(reached(metadata(target), name, target))
    out = sys.stdout
    out.write("Third-party software in kinesis-output's programs and components\n")
    out.write("=" * 66 + "\n\n")
    out.write(
        "kinesis-ship, out_kinesis_wasm.so and the kinesis_output*.wasm components are built\n"
        "from the crates below (%d). Each is listed with its licence as its authors state it and the\n"
        "licence and notice files it ships.\n\n" % len(crates)
    )
    printed = {}
    missing = []
    for package in sorted(crates.values(), key=lambda p: (p["name"], p["version"])):
        label = "%s %s" % (package["name"], package["version"])
        licence = package.get("license") or ("see " + package["license_file"] if package.get("license_file") else None)
        if not licence:
            missing.append(label)
        out.write("-" * 66 + "\n%s\n" % label)
        out.write("licence: %s\n" % licence)
        if package.get("repository"):
            out.write("source: %s\n" % package["repository"])
        for shown, path in licence_files(package):
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            digest = hashlib.sha256(text.encode()).hexdigest()
            if digest in printed:
                out.write("\n%s: the same text as %s above\n" % (shown, printed[digest]))
                continue
            printed[digest] = "%s's %s" % (label, shown)
            out.write("\n%s:\n\n%s\n" % (shown, text.rstrip()))
        out.write("\n")
    if missing:
        sys.exit("crates with no licence stated: " + ", ".join(missing))


main()
