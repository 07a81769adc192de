#!/usr/bin/env bash
# Builds the Debian package (cpack -G DEB) and installs it with apt on a freshly debootstrapped
# Debian 12, the way a user would: apt resolves the dependencies from the archive. Then checks
# that the commands run, the example validates, the unit passes `systemd-analyze verify`, the
# postinst made the `cascade` user, and the completions are in place.
# Needs root (debootstrap, chroot); run by hand, it is not part of ctest.
# usage: scripts/package-test.sh          (FRESH_DEBIAN=path overrides the fresh-machine tool)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "package-test: needs root (debootstrap and chroot)" >&2
  exit 2
fi
fresh=${FRESH_DEBIAN:-/work/shared/tools/fresh-debian}
[ -x "$fresh" ] || { echo "package-test: no fresh-machine tool at $fresh" >&2; exit 2; }

[ -f build/CMakeCache.txt ] || cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build --target cascade cascade-sim -j2
rm -f build/cascade_*.deb
(cd build && cpack -G DEB >/dev/null)
deb=$(ls build/cascade_*.deb)
version=$(dpkg-deb -f "$deb" Version)
echo "package-test: built $deb (Depends: $(dpkg-deb -f "$deb" Depends))"

# fresh-debian copies only files git would track, and build/ is ignored: the package travels in
# a scratch folder inside the project that is not, removed again on exit.
stage=$(mktemp -d package-test.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp "$deb" "$stage/"

unit=/usr/lib/systemd/system/cascade@.service
checks=(
  "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ./$stage/cascade_*.deb"
  "test \"\$(cascade --version)\" = 'cascade $version' && command -v cascade-sim"
  "cascade validate /usr/share/doc/cascade/examples/dunder-mifflin.yaml"
  "id cascade && test \"\$(stat -c %U:%G:%a /etc/cascade)\" = root:cascade:750"
  "test -f /usr/share/bash-completion/completions/cascade && test -f /usr/share/zsh/vendor-completions/_cascade && bash --norc -c 'source /usr/share/bash-completion/completions/cascade && complete -p cascade'"
  # systemd is not in a minimal Debian; it comes from the archive here when it can
  "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null 2>&1 || true
   if command -v systemd-analyze >/dev/null; then systemd-analyze verify $unit && echo 'systemd-analyze verify: ok'
   else echo 'systemd-analyze not available: unit check skipped'; fi"
  "DEBIAN_FRONTEND=noninteractive apt-get remove -y cascade && ! command -v cascade"
)
out=$("$fresh" . "${checks[@]}" 2>&1) || { echo "$out"; echo "package-test: fresh-debian failed" >&2; exit 1; }
echo "$out"
if grep -q '^command [0-9]* exit [1-9]' <<<"$out"; then
  echo "package-test: FAILED" >&2
  exit 1
fi
echo "package-test: ok ($deb installs and runs on a fresh Debian 12)"
