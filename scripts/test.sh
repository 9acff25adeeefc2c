#!/usr/bin/env bash
# Builds everything and runs every test: unit, property, swarm-level and multi-process
# (real dsdnd daemons on 127.0.0.x and a real in-process DNS seed server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)"; exit 1; }
# The network-namespace tests (the NAT lab: tests/tests/{netns_dialling,nat_lab,nat_traversal}.rs)
# need root, iproute2 (`ip`, `ss`), nftables (`nft`) and procps (`sysctl`).
if { ! command -v ip || ! command -v ss || ! command -v nft || ! command -v sysctl; } >/dev/null \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 nftables procps
fi
# The Prometheus scrape test (tests/tests/prometheus_scrape.rs) runs a real Prometheus server
# (Debian package `prometheus`; the test skips, saying so, without it).
if ! command -v prometheus >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus
  # The package may start its own server (and node exporter) where an init system runs; the
  # test starts its own.
  pkill -x prometheus || true
  pkill -x prometheus-node-exporter || true
fi
# The dashboard test (tests/tests/dashboard_browser.rs) opens the devnet's dashboard in
# headless Chromium (Debian package `chromium`; fonts-liberation for legible text; the test
# skips, saying so, without it, and fails in CI).
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation
fi
cargo build --workspace --bins
cargo test --workspace --no-fail-fast
# Tests that need the dsdnd binary built above (ignored in a plain `cargo test`).
cargo test -p dsdn-daemon --lib -- --ignored
