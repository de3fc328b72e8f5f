# Installs what the checks need, skipping what is already there: rustfmt and clippy,
# Garage, wasm-tools, wkg (crates.io), the Debian packages of the interop suite and
# the browser test, oras-py, wasmtime, standardwebhooks, cloudevents, pyjwt and cryptography (PyPI, in .venv), playwright-core and axe-core (npm).
# Sourced by .ci/run and .ci/long from the repository's root, after `step` is defined.

step "toolchain"
cargo --version
rustc --version
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
    rustup component add "$component"
  fi
done
# Debian packages: curl/openssl for the Garage script; docker-registry (CNCF distribution
# 2.8.2) for the client's interop tests; the real clients of the interop suite
# (tests/interop): skopeo, buildah, podman, umoci, wat2wasm (wabt), containerd (its `ctr`
# pulls through the mirror, flow 13); chromium, node and npm for the web page's browser test
# (interop flow 10). Installed in the background while the tools
# below build (downloading and unpacking them takes minutes the builds do not need).
missing=()
for tool in curl:curl openssl:openssl docker-registry:docker-registry skopeo:skopeo buildah:buildah \
  podman:podman umoci:umoci wat2wasm:wabt containerd:containerd pkg-config:pkg-config chromium:chromium \
  node:nodejs npm:npm; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
# OpenSSL's headers, for wharf-client's `native-tls` feature.
[ -f /usr/include/openssl/ssl.h ] || missing+=(libssl-dev)
apt_pid=
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]} (in the background)"
  apt_log=$(mktemp /tmp/wharf-ci-apt.XXXXXX)
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") > "$apt_log" 2>&1 &
  apt_pid=$!
fi
# wasm-tools and wkg are built with opt-level 1: two command lines interop flow 8 runs a few
# times, whose builds are a fifth of a fresh machine's set-up. (Garage keeps the default: the
# S3 tests and the model test run against it.)
tool_profile=(env CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0)
# Garage, the S3-compatible engine the S3 backend is tested against (a 10-18 minute build on
# a fresh machine; reused when already installed).
if ! command -v garage >/dev/null 2>&1; then
  step "installing garage (S3 engine for the S3Store tests)"
  cargo install garage --version 2.5.0 --locked --no-default-features --features bundled-libs,lmdb
fi
# The Bytecode Alliance's Wasm tools for interop flow 8: wasm-tools builds the component from
# WAT and prints its WIT (only the subcommands used, to keep the build short); wkg pushes and
# pulls it. Built once per machine, then reused.
if ! command -v wasm-tools >/dev/null 2>&1; then
  step "installing wasm-tools (components from WAT, their WIT)"
  "${tool_profile[@]}" cargo install wasm-tools --version 1.263.0 --locked --no-default-features --features parse,validate,print,component
fi
if ! command -v wkg >/dev/null 2>&1; then
  step "installing wkg (wkg oci push/pull)"
  "${tool_profile[@]}" cargo install wkg --version 0.16.1 --locked
fi
if [ -n "$apt_pid" ]; then
  step "waiting for the Debian packages"
  if ! wait "$apt_pid"; then
    cat "$apt_log" >&2
    echo "installing the Debian packages failed" >&2
    exit 1
  fi
fi
# PyPI clients of the interop suite, in .venv (where tests/interop looks for them), the
# webhook receiver's libraries (tests/webhooks/receiver.py: standardwebhooks verifies each
# delivery, the CloudEvents SDK parses it) and the test OIDC issuer's (tests/oidc/issuer.py:
# PyJWT and cryptography sign its tokens).
if ! .venv/bin/python -c 'import oras.client, wasmtime, standardwebhooks, cloudevents.v1.http, jwt, cryptography' >/dev/null 2>&1; then
  step "installing oras-py, wasmtime, standardwebhooks, cloudevents, pyjwt and cryptography in .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q oras==0.2.43 wasmtime==50.0.1 standardwebhooks==1.3.0 cloudevents==2.2.0 pyjwt==2.15.1 cryptography==51.0.1
fi

# npm packages of the browser test (tests/web: playwright-core drives Debian's chromium;
# axe-core checks accessibility), pinned by its package-lock.json.
if [ ! -d tests/web/node_modules/playwright-core ] || [ tests/web/package-lock.json -nt tests/web/node_modules ]; then
  step "installing playwright-core and axe-core in tests/web (npm ci)"
  (cd tests/web && npm ci --no-audit --no-fund)
fi


# npm packages of the independent Sigstore signer of the trust tests (tests/sigstore:
# @sigstore/sign against @sigstore/mock's Fulcio and Rekor, attached by @sigstore/oci).
if [ ! -d tests/sigstore/node_modules/@sigstore/mock ] || [ tests/sigstore/package-lock.json -nt tests/sigstore/node_modules ]; then
  step "installing @sigstore/sign, @sigstore/mock and @sigstore/oci in tests/sigstore (npm ci)"
  (cd tests/sigstore && npm ci --no-audit --no-fund)
fi
