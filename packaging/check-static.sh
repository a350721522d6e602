#!/bin/sh
# Builds treaty as the Dockerfile does and checks the binary is static (it
# must run on distroless/static or scratch, which have no libc) and prints
# its version. Usage: packaging/check-static.sh [OUT]   (default dist/treaty)
set -eu
out=${1:-dist/treaty}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 go build -trimpath -buildvcs=auto -ldflags='-s -w' -o "$out" ./cmd/treaty
desc=$(file -b "$out")
case $desc in
*"statically linked"*) ;;
*) echo "check-static: $out is not statically linked: $desc" >&2; exit 1 ;;
esac
if ldd "$out" >/dev/null 2>&1; then
	echo "check-static: ldd lists shared libraries for $out:" >&2
	ldd "$out" >&2
	exit 1
fi
"$out" version
echo "check-static: $out is static"
