#!/usr/bin/env bash
# Installs what cascade needs to build and test on Debian 12 (bookworm), from Debian's archive
# only. Idempotent: packages already present are not reinstalled. Run as root or with sudo.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libcurl4-openssl-dev libsimdjson-dev libyaml-cpp-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev libcli11-dev libxxhash-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-format libclang-rt-14-dev
)
# Benchmark peers and tools; optional for building and testing.
OPTIONAL=(wrk hyperfine time)

missing=()
for p in "${PACKAGES[@]}" ${WITH_BENCH:+"${OPTIONAL[@]}"}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all build dependencies present"
