#!/bin/bash -eu
# Builds every cargo-fuzz target with optimisations and copies it, with its committed corpus as the seed corpus,
# to $OUT, where ClusterFuzzLite (and OSS-Fuzz) look for fuzzers. tools/clusterfuzzlite-build.sh runs this
# locally with OUT set to a temporary folder.
cd "$SRC/tcpdrill/fuzz"
cargo fuzz build -O
triple=$(rustc -vV | sed -n 's/^host: //p')
for target in $(cargo fuzz list); do
  cp "target/$triple/release/$target" "$OUT/"
  if [ -d "corpus/$target" ]; then
    (cd "corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
  fi
done
