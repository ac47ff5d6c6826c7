#!/usr/bin/env bash
# Install the Debian packages the tests and image builds need (root only; skipped when already present).
#   busybox-static: /bin/sh and sleep inside the hearth container image (preStop drain hooks need a shell).
#   gcc:            mypyc compiles the gateway's request path for the frozen binary (scripts/compile.py).
#   etcd-server:    the datastore of the throwaway kube-apiserver the integration tests start.
#   openssl:        the service-account key pair of that apiserver.
#   prometheus:     promtool (the alert rules' tests) and the test bed's Prometheus (testing/prometheus).
#   (lint) shellcheck: the quality gate checks every shell script with it (tests/test_quality.py).
set -euo pipefail
packages=(busybox-static gcc etcd-server openssl prometheus shellcheck)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "system-deps: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
fi
echo "system-deps: installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
