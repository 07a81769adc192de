#!/usr/bin/env bash
# Installs what cascade needs to build and test on Debian 12 (bookworm), from Debian's archive
# only. Idempotent: packages already present are not reinstalled. Run as root or with sudo.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config git ca-certificates
  libcurl4-openssl-dev libsimdjson-dev libyaml-cpp-dev libsqlite3-dev sqlite3
  libspdlog-dev libfmt-dev libcli11-dev libxxhash-dev libcpp-httplib-dev libpq-dev zlib1g-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang clang-format libclang-rt-14-dev
)
# The status page's browser test (tests/browser): Debian's Chromium, driven by playwright-core
# from npm. WITHOUT_BROWSER=1 leaves them out; the test then reports itself skipped.
BROWSER=(chromium nodejs npm)
# The PostgreSQL backend's tests start a throwaway PostgreSQL 15 (initdb + pg_ctl from
# /usr/lib/postgresql/15/bin); without it they report themselves skipped. Debian's package also
# creates and starts a default cluster; the tests do not use it. WITHOUT_POSTGRES=1 leaves it out.
POSTGRES=(postgresql)
# Benchmark peers and tools; optional for building and testing.
OPTIONAL=(wrk hyperfine time)

missing=()
for p in "${PACKAGES[@]}" ${WITH_BENCH:+"${OPTIONAL[@]}"}; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
missing_browser=()
if [ "${WITHOUT_BROWSER:-0}" != 1 ]; then
  for p in "${BROWSER[@]}"; do
    # A node from elsewhere (e.g. NodeSource, which bundles npm and conflicts with Debian's npm)
    # serves as well: the commands count, not the packages.
    case $p in
      nodejs) command -v node >/dev/null && continue ;;
      npm) command -v npm >/dev/null && continue ;;
    esac
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_browser+=("$p")
  done
fi
missing_postgres=()
if [ "${WITHOUT_POSTGRES:-0}" != 1 ]; then
  for p in "${POSTGRES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing_postgres+=("$p")
  done
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ((${#missing[@]} + ${#missing_browser[@]} + ${#missing_postgres[@]})); then $SUDO apt-get update -qq || true; fi
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup: all build dependencies present"
# Only a test needs these, so failing to get them is a warning: that test then skips, saying why.
if ((${#missing_browser[@]})); then
  echo "setup: installing ${missing_browser[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing_browser[@]}" >/dev/null ||
    echo "setup: warning: could not install ${missing_browser[*]}; the browser test will skip" >&2
fi

if ((${#missing_postgres[@]})); then
  echo "setup: installing ${missing_postgres[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${missing_postgres[@]}" >/dev/null ||
    echo "setup: warning: could not install ${missing_postgres[*]}; the PostgreSQL tests will skip" >&2
fi

# playwright-core, pinned by tests/browser/package-lock.json. It drives the system Chromium and
# downloads no browser. Without the npm registry the browser test skips; setup goes on.
if [ "${WITHOUT_BROWSER:-0}" != 1 ]; then
  browser_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/browser"
  pinned='const l = require(process.argv[1] + "/package-lock.json");
    const v = require(process.argv[1] + "/node_modules/playwright-core/package.json").version;
    process.exit(l.packages["node_modules/playwright-core"].version === v ? 0 : 1);'
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "setup: warning: no node/npm; the browser test will skip" >&2
  elif node -e "$pinned" "$browser_dir" 2>/dev/null; then
    :
  elif npm_log=$(PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 timeout 300 npm ci --prefix "$browser_dir" \
    --no-audit --no-fund --fetch-retries=1 --fetch-timeout=60000 --loglevel=error 2>&1); then
    echo "setup: playwright-core installed in tests/browser"
  else
    echo "setup: warning: npm ci in tests/browser failed (no registry?); the browser test will skip" >&2
    printf '%s\n' "$npm_log" | tail -n 3 | sed 's/^/setup:   npm: /' >&2
  fi
fi
