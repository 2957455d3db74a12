#!/usr/bin/env bash
# Builds a release into dist/ (docs/RELEASING.md): a tarball of static binaries (no Swift toolchain
# needed to run them), the systemd units, an example config, the docs and a checksum; and the Python
# wheel. Checks that the versions agree and that the binaries run with the toolchain hidden.
# One release build: several minutes of all cores.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "release: $*" >&2; exit 1; }
version="$(tr -d '[:space:]' < VERSION)"
[[ "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || fail "VERSION '$version' is not MAJOR.MINOR.PATCH"
grep -q "public static let string = \"$version\"" Sources/Protocol/Release/ReleaseVersion.swift \
  || fail "Sources/Protocol/Release/ReleaseVersion.swift does not say $version"
grep -q "^__version__ = \"$version\"" clients/python/tokenfeed/__init__.py \
  || fail "clients/python/tokenfeed/__init__.py does not say $version"
grep -q "^## $version " CHANGELOG.md || fail "CHANGELOG.md has no '## $version' section"

arch="$(uname -m)"
name="tokenfeed-$version-linux-$arch"
mkdir -p dist
stage="$(mktemp -d)/$name"
mkdir -p "$stage/bin" "$stage/docs"

echo "release: swift build -c release --static-swift-stdlib" >&2
swift build -c release --static-swift-stdlib --product tokenfeedd
swift build -c release --static-swift-stdlib --product tokenfeed
bin="$(swift build -c release --static-swift-stdlib --show-bin-path)"
for b in tokenfeed tokenfeedd; do
  cp "$bin/$b" "$stage/bin/$b"
  strip "$stage/bin/$b"
  if readelf -d "$stage/bin/$b" | grep NEEDED | grep -q libswift; then
    readelf -d "$stage/bin/$b" | grep NEEDED >&2
    fail "$b still needs a Swift runtime library"
  fi
done
cp -r deploy "$stage/deploy"
cp docs/*.md "$stage/docs/"
cp README.md CHANGELOG.md LICENSE "$stage/"

# The binaries with the toolchain hidden: no Swift on PATH, no LD_LIBRARY_PATH, out of the build tree.
check="$(mktemp -d)"
cp -r "$stage" "$check/"
run() { env -i HOME="$check" PATH=/usr/bin:/bin "$@"; }
b="$check/$name/bin"
for p in tokenfeed tokenfeedd; do
  got="$(run "$b/$p" --version)"
  [[ "$got" == "$p $version (protocol "*", cursor "*")" ]] || fail "$p --version printed '$got'"
  echo "release: $got" >&2
done
run "$b/tokenfeed" shard import --from datatrove fixtures/corpus/llama3-text/*.ds --out "$check/root/web" \
  --vocab-size 128256 > "$check/import.log"
printf 'sequence_length: 256\nseed: 1\nstages:\n  - name: only\n    start: 0\n    end: 100000\n    mixture: {web: 1}\n' \
  > "$check/root/curriculum.yaml"
run "$b/tokenfeed" plan "$check/root/curriculum.yaml" --data-root "$check/root" > "$check/plan.log"
# exec: $! is tokenfeedd itself (not a subshell), so SIGTERM reaches the daemon.
(exec env -i HOME="$check" PATH=/usr/bin:/bin "$b/tokenfeedd" --curriculum "$check/root/curriculum.yaml" \
  --data-root "$check/root" --socket "$check/s.sock" > "$check/tokenfeedd.log" 2>&1) &
daemon=$!
for _ in $(seq 600); do [ -S "$check/s.sock" ] && break; sleep 0.1; done
[ -S "$check/s.sock" ] || { cat "$check/tokenfeedd.log" >&2; fail "tokenfeedd did not open its socket"; }
run "$b/tokenfeed" dump --socket "$check/s.sock" --count 2 > "$check/dump.log" \
  || { kill "$daemon"; fail "tokenfeed dump --socket failed"; }
kill -TERM "$daemon"
status=0; wait "$daemon" || status=$?
[ "$status" = 0 ] || { cat "$check/tokenfeedd.log" >&2; fail "tokenfeedd exited $status on SIGTERM"; }
[ -s "$check/dump.log" ] || fail "tokenfeed dump printed nothing"
echo "release: the binaries run without the toolchain (import, plan, serve, dump, SIGTERM)" >&2
rm -rf "$check"

tar -C "$(dirname "$stage")" -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
rm -rf "$(dirname "$stage")"

# The Python wheel, versioned with the daemon.
py="$(scripts/python.sh)"
if "$py" -c "import build" 2>/dev/null; then
  "$py" -m build --wheel --outdir dist clients/python > dist/wheel.log 2>&1 || { cat dist/wheel.log >&2; fail "python -m build failed"; }
else
  "$py" -m pip wheel --no-deps --wheel-dir dist clients/python > dist/wheel.log 2>&1 || { cat dist/wheel.log >&2; fail "pip wheel failed"; }
fi
rm -f dist/wheel.log
ls dist/tokenfeed-"$version"-py3-none-any.whl >/dev/null || fail "no wheel tokenfeed-$version-py3-none-any.whl"
rm -rf clients/python/build clients/python/*.egg-info
echo "release: dist/$name.tar.gz, dist/$name.tar.gz.sha256, dist/tokenfeed-$version-py3-none-any.whl"
