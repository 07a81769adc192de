#!/usr/bin/env bash
# The README's first command: install, build, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
WITHOUT_BROWSER=1 WITHOUT_POSTGRES=1 scripts/setup.sh
scripts/build.sh
exec build/src/cli/cascade demo "$@"
