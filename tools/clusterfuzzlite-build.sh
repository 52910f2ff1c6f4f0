#!/bin/bash -eu
# Runs .clusterfuzzlite/build.sh here as ClusterFuzzLite's image would (SRC holding the checkout as tcpdrill, OUT
# a fresh folder), with the local nightly toolchain and cargo-fuzz, and checks that every target and its seed
# corpus arrived. Needs `cargo install cargo-fuzz`, the nightly toolchain and zip. One cargo build at a time.
repo=$(cd "$(dirname "$0")/.." && pwd)
src=$(mktemp -d) out=$(mktemp -d)
trap 'rm -rf "$src" "$out"' EXIT
ln -s "$repo" "$src/tcpdrill"
(export SRC="$src" OUT="$out" RUSTUP_TOOLCHAIN=nightly; bash "$repo/.clusterfuzzlite/build.sh")
status=0
for target in $(cd "$repo/fuzz" && cargo +nightly fuzz list); do
  if [ -x "$out/$target" ]; then echo "ok: $target"; else echo "missing: $target"; status=1; fi
  if [ -d "$repo/fuzz/corpus/$target" ] && [ ! -s "$out/${target}_seed_corpus.zip" ]; then
    echo "missing: ${target}_seed_corpus.zip"; status=1
  fi
done
ls -la "$out"
exit $status
