#!/usr/bin/env bash
# Rebuilds internal/third_party/nats-server: the nats-server module at
# VERSION from the Go module proxy, without its tests and docs, with
# nats-server.patch applied (a file-store fix, and server/relay_store.go, the
# relay's in-process store entry point). go.mod replaces the module with this copy.
#
#   internal/third_party/update.sh            # the version below
#   VERSION=v2.15.3 internal/third_party/update.sh
#
# On an upgrade: run it with the new VERSION, fix the patch if it no longer
# applies (or drop it once upstream has the fix), set the require line in
# go.mod to the same version, and run the whole suite; TestTombstoneKeepsWriteCache
# (internal/stream) fails if the embedded server reloads the block being
# written after an ack of an old message.
set -euo pipefail
version=${VERSION:-v2.15.2}
here=$(cd "$(dirname "$0")" && pwd)
dest="$here/nats-server"
tmp=$(mktemp -d)
trap 'chmod -R u+w "$tmp"; rm -rf "$tmp"' EXIT

# A throwaway module, so this repository's replace does not apply.
(cd "$tmp" && go mod init tmp > /dev/null 2>&1 && GOFLAGS=-mod=mod go mod download "github.com/nats-io/nats-server/v2@$version")
src="$(go env GOMODCACHE)/github.com/nats-io/nats-server/v2@$version"

rm -rf "$dest"
cp -r "$src" "$dest"
chmod -R u+w "$dest"
# What the relay does not build: tests, test data and configs, docs, the
# server's own CI and release files.
find "$dest" -name '*_test.go' -delete
find "$dest" -depth -type d \( -name testdata -o -name configs \) -exec rm -rf {} +
rm -rf "$dest"/{test,logos,docker,scripts,doc,util,.github} "$dest"/.[a-z]*
find "$dest" -maxdepth 2 -name '*.md' ! -name README.md -delete
find "$dest" -name '*.txt' -delete
patch -s -p1 -d "$dest" < "$here/nats-server.patch"
# One upstream file (Solaris only) is not gofmt-formatted; formatted here so
# that the repository's gofmt gate holds for this copy too.
gofmt -w "$dest"
echo "$version" > "$dest/VERSION.relay"
(cd "$here/../.." && go build -o /dev/null ./cmd/relay)
echo "internal/third_party/nats-server: $version with nats-server.patch"
