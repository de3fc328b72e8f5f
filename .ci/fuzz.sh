# Builds the cargo-fuzz targets and runs each for $fuzz_seconds, seeded with real data.
# Sourced by .ci/run and .ci/long from the repository's root (needs $root); returns there.

cd "$root/fuzz"
# cargo-fuzz needs nightly flags; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
export RUSTC_BOOTSTRAP=1
cargo fuzz build
for target in $(cargo fuzz list); do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  # Seed each target with real data: manifests and configs, and Wasm binaries.
  case "$target" in
    inspect | wit) cp "$root"/tests/data/wasm/*.wasm "$corpus"/ ;;
    extract)
      # Layers as buildah writes them: a plain tar and a tar+gzip holding a module; and the
      # finding of issue 29: a 1 GiB long-name header in 32 KB of zstd (under the memory
      # limit below, a reader that buffers it fails at once).
      tar -cf "$corpus/plain.tar" -C "$root/tests/data/wasm" hello.wasm
      tar -czf "$corpus/layer.tar.gz" -C "$root/tests/data/wasm" hello.wasm
      (cd "$root" && cargo run -q --locked -p wharf-wasm --example hostile_layers -- "$root/fuzz/$corpus")
      rm -f "$corpus/long-name-1gib.tar.gz" ;; # 1 MB: over -max_len
    journal) cp "$root"/tests/data/journal/*.log "$corpus"/ ;;
    request)
      # Paths and queries clients send, and range headers.
      printf '%s' '/v2/library/ubuntu/manifests/latest' > "$corpus/manifest"
      printf '%s' '/v2/a%2Fb/blobs/uploads/?digest=sha256:abc&mount=x&from=y' > "$corpus/escaped"
      printf '%s' '/v2/_catalog?n=10&last=a/b' > "$corpus/catalog"
      printf '%s' '/v2/x/_wharf/artifacts/v1?type=wasm' > "$corpus/wharf"
      printf '%s' 'bytes=0-1023' > "$corpus/range"
      printf '%s' '0-1048575' > "$corpus/content-range" ;;
    lifecycle)
      printf 'sha256:%064d 1234 application/vnd.oci.image.manifest.v1+json\n1795790048' 0 > "$corpus/tag"
      printf '%s' '10GiB' > "$corpus/size"
      printf 'v*\nv1.2.3' > "$corpus/glob"
      printf '%s' '4096 1795790048' > "$corpus/link" ;;
    htpasswd)
      printf '%s\n' '# users' 'alice:$2y$05$nZ1bG6mVwXAzvQnFO0y1b.OVK8w7n6XlCqbgV3dAz2a2Gk1p1w7Ku' > "$corpus/bcrypt"
      printf '%s\n' 'bob:$apr1$abc$def' 'carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=' > "$corpus/weak" ;;
    scope)
      printf '%s' 'repository:samalba/my-app:pull,push registry:catalog:*' > "$corpus/list"
      printf '%s' 'repository:localhost:5000/a/b:pull' > "$corpus/port"
      printf '%s' 'team/**/cache-*' > "$corpus/pattern" ;;
    token)
      # A real ES256 token's shape, an alg:none token, a JWKS.
      printf '%s' 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImJlOWI0YTU0ZTIyOTc3YmMifQ.eyJpc3MiOiJ3aGFyZiIsInN1YiI6ImFsaWNlIiwiYXVkIjoid2hhcmYiLCJleHAiOjE3OTU3Njc3MjIsImFjY2VzcyI6W119.C48jWK1q37UteTjXbXsYc2LSSVnHyhj5VQg-8KhruMDygE1C8RrkWxp9cHyUjjHtVob59qA88AjERmvpbATFCg' > "$corpus/es256"
      printf '%s' 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.' > "$corpus/none"
      printf '%s' '{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}' > "$corpus/jwks" ;;
    signature)
      # Bundles made by @sigstore/sign against @sigstore/mock (keyless message and DSSE,
      # key-based, tampered), a cosign simple-signing payload and its signature.
      cp "$root"/crates/auth/tests/data/sigstore/*.json "$root"/crates/auth/tests/data/sigstore/*.sig "$corpus"/ ;;
    classify)
      # The first byte says how many trailing bytes are the config blob (0: none).
      for f in "$root"/tests/data/*/*.json; do
        { printf '\000'; cat "$f"; } > "$corpus/seed-$(basename "$f")"
      done ;;
    *) cp "$root"/tests/data/*/*.json "$corpus"/ ;;
  esac
  # Layer extraction runs under the budget of issue 29: 512 MiB is far above what any input
  # may cost it, and far below a buffered 1 GiB header.
  rss_limit=2048
  [ "$target" = extract ] && rss_limit=512
  cargo fuzz run "$target" "$corpus" -- \
    -max_total_time="$fuzz_seconds" -max_len=65536 -timeout=10 -rss_limit_mb="$rss_limit" \
    -print_final_stats=1 2>&1 | tail -n 12
  # cargo fuzz exits non-zero on a finding, which set -e/pipefail turns into a failure.
done

cd "$root"
