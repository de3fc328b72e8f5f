#!/usr/bin/env bash
# Wharf vs CNCF distribution, side by side on loopback: starts Debian's docker-registry 2.8.2
# and wharf-server (both on filesystem storage in a scratch folder, logs at error/warn level),
# runs `examples/bench_registry` against both (interleaved runs, medians, ratios, server CPU
# and memory), and measures the machine's physical references (openssl SHA-256, loopback TCP).
#
#   bash benches/compare.sh                 # full run (about 15 minutes on 2 cores)
#   RUNS=5 bash benches/compare.sh          # more runs per row
#   SCALE=16 bash benches/compare.sh        # a quick smoke run (sizes and counts / 16)
#   SECONDS_PER_LEVEL=5 bash benches/compare.sh   # longer GET/HEAD runs (default 2 s each)
#   bash benches/compare.sh --only blobs    # extra arguments go to bench_registry's main table
#   AUTH_ONLY=1 bash benches/compare.sh     # only the access-control table (SKIP_AUTH=1: without it)
#   WARMUP=0 bash benches/compare.sh        # no untimed warm-up runs
#   CEILING=0 bash benches/compare.sh       # without the ceiling column (Debian's nginx serving
#                                           # a static file of the manifest's size at every path)
#   STORAGE=s3 bash benches/compare.sh      # both on S3: a Garage started here, distribution with
#                                           # its s3 driver (own bucket, redirects on, as it ships)
#                                           # and wharf with `redirect=true`; Garage's own GET
#                                           # throughput is measured in the same run
#   MIRROR_ONLY=1 bash benches/compare.sh   # only the curl pull rows and the mirror row: a
#                                           # 512 MiB blob pulled from distribution directly,
#                                           # through a wharf-server mirror of it (uncached:
#                                           # a fresh mirror each run; then cached), and from
#                                           # wharf-server plainly
#   TRUST_ONLY=1 bash benches/compare.sh    # only the trust-policy row: manifest GET at
#                                           # concurrency 64 on a wharf-server enforcing a
#                                           # trust policy (every manifest signed) against one
#                                           # with none (SKIP_TRUST=1: without it)
#   WEBHOOKS_ONLY=1 bash benches/compare.sh # only the webhook row: image pushes one after the
#                                           # other on a wharf-server with three webhooks (to a
#                                           # loopback receiver answering 204) against one with
#                                           # none, in stretches of 50 that alternate, 20 pairs
#                                           # per RUNS (SKIP_WEBHOOKS=1: without it)
#   BENCH_TMP=/dev/shm bash benches/compare.sh # the servers' folders on another file system
#   SCALE_ONLY=1 bash benches/compare.sh    # only the scale table: tags and catalog pages of a
#                                           # repository of 100,000 tags and a registry of
#                                           # 10,000 repositories (TAGS=…, REPOSITORIES=… to change;
#                                           # BASELINE=0: wharf alone)
#
# Writes the tables to target/bench-compare/table.md, auth-table.md, trust-table.md, webhooks-table.md and scale-table.md (with
# STORAGE=s3: s3-table.md, s3-scale-table.md) as well as stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
runs=${RUNS:-3}
scale=${SCALE:-1}
seconds=${SECONDS_PER_LEVEL:-2}
warmup=${WARMUP:-1}
storage=${STORAGE:-fs}
case "$storage" in fs) suffix= ;; s3) suffix=s3- ;; *) echo "STORAGE is fs or s3" >&2; exit 1 ;; esac

command -v docker-registry >/dev/null || { echo "needs docker-registry (apt-get install docker-registry)" >&2; exit 1; }
cargo build --release --locked -q -p wharf-server --bins
cargo build --release --locked -q --example bench_registry

out="$root/target/bench-compare"
mkdir -p "$out"
# A fresh folder per run, removed at the end (not at the start of the next run: ext4 skips
# inodes freed in the last minutes when it allocates, which would slow the next run's file
# creations).
# And a run right after another waits until 65 s have passed since that one's folder went (and
# was synced): its thousands of freed inodes would otherwise slow this run's first file
# creations, and rows that compare two servers in turns would see the drift as noise. Without a
# journal, ext4 will not reuse an inode freed less than 60 s ago (300 s while its inode-table
# block is not yet written back, hence the sync) and checks each such inode at every
# allocation (`recently_deleted` in fs/ext4/ialloc.c).
rest_after=65
if [ -f "$out/.removed-at" ]; then
  rest=$(( $(cat "$out/.removed-at") + rest_after - $(date +%s) ))
  if [ "$rest" -gt 0 ] && [ "$rest" -le "$rest_after" ]; then
    echo "waiting ${rest} s: the last run's folder was removed $(( rest_after - rest )) s ago"
    sleep "$rest"
  fi
fi
clean_work() { rm -rf "$work"; sync -f "$out" 2>/dev/null || sync; date +%s > "$out/.removed-at"; }
work=$(mktemp -d "${BENCH_TMP:-$out}/run.XXXXXX")
mkdir -p "$work/distribution" "$work/wharf"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
dist_port=$(free_port)
wharf_port=$(free_port)

if [ "$storage" = s3 ]; then
  # One Garage for both, each registry in its own bucket.
  command -v garage >/dev/null || { echo "needs garage (cargo install garage; .ci/run installs it)" >&2; exit 1; }
  eval "$(bash .ci/garage.sh start "$work/garage")"
  trap 'bash .ci/garage.sh stop "$work/garage"; clean_work' EXIT
  garage -c "$work/garage/garage.toml" bucket create distribution > /dev/null
  garage -c "$work/garage/garage.toml" bucket allow --read --write --owner distribution \
    --key "$AWS_ACCESS_KEY_ID" > /dev/null
  endpoint=${WHARF_S3_URL#*endpoint=}
  endpoint=${endpoint%%&*}
  wharf_storage="${WHARF_S3_URL/\?/\/wharf?}&redirect=true"
  distribution_storage="  s3:
    accesskey: $AWS_ACCESS_KEY_ID
    secretkey: $AWS_SECRET_ACCESS_KEY
    region: garage
    regionendpoint: $endpoint
    bucket: distribution
    secure: false
    v4auth: true
    rootdirectory: /"
else
  wharf_storage="fs:$work/wharf"
  distribution_storage="  filesystem:
    rootdirectory: $work/distribution"
fi

cat > "$work/distribution.yml" <<YAML
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
$distribution_storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$dist_port
YAML

# (Without AWS_CA_BUNDLE: the AWS SDK in distribution refuses it with a custom transport.)
env -u AWS_CA_BUNDLE docker-registry serve "$work/distribution.yml" > "$work/distribution.log" 2>&1 &
dist_pid=$!
WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$wharf_port" --storage "$wharf_storage" \
  > "$work/wharf.log" 2>&1 &
wharf_pid=$!
if [ "$storage" = s3 ]; then
  trap 'kill $dist_pid $wharf_pid 2>/dev/null || true; wait 2>/dev/null || true; bash .ci/garage.sh stop "$work/garage"; clean_work' EXIT
else
  trap 'kill $dist_pid $wharf_pid 2>/dev/null || true; wait 2>/dev/null || true; clean_work' EXIT
fi
for port in "$dist_port" "$wharf_port"; do
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.1; done
  curl -fs "http://127.0.0.1:$port/v2/" > /dev/null || {
    echo "the registry on port $port did not start:" >&2
    cat "$work/distribution.log" "$work/wharf.log" >&2
    exit 1
  }
done
sleep 1   # let both settle before reading their idle memory

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(uname -r)"
echo "distribution: $(docker-registry --version 2>/dev/null | head -1)"
echo "wharf-server: $(git describe --always --dirty 2>/dev/null)"
echo "storage: $storage$([ "$storage" = s3 ] && echo " (Garage $(garage --version 2>/dev/null | head -1 | awk '{print $2}'), no fsync)")"
echo
echo "physical references:"
openssl speed -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null | grep -E '^(sha256|SHA256)' | \
  awk '{ printf "  openssl sha256, 1 MiB blocks: %s\n", $NF }'
./target/release/examples/bench_registry --loopback-only
echo

if [ "${SCALE_ONLY:-0}" = 1 ]; then
  # BASELINE=0: wharf alone (distribution's catalog on S3 reads every repository's objects per
  # page: at 10,000 repositories one walk takes hours).
  baseline=(--baseline "http://127.0.0.1:$dist_port" --baseline-pid "$dist_pid" --baseline-name "distribution 2.8.2")
  [ "${BASELINE:-1}" = 0 ] && baseline=()
  ./target/release/examples/bench_registry --only scale --tags "${TAGS:-100000}" \
    --repositories "${REPOSITORIES:-10000}" \
    --target "http://127.0.0.1:$wharf_port" --server-pid "$wharf_pid" --target-name wharf-server "${baseline[@]}" \
    --runs "$runs" --seconds "$seconds" --warmup "$warmup" --markdown "$out/${suffix}scale-table.md"
  exit 0
fi

if [ "${TRUST_ONLY:-0}" != 1 ] && [ "${AUTH_ONLY:-0}" != 1 ] && [ "${MIRROR_ONLY:-0}" != 1 ] && [ "${WEBHOOKS_ONLY:-0}" != 1 ]; then
  # The machine's ceiling for the GET/HEAD rows: Debian's nginx (as it ships, one worker per
  # core, no access log — wharf-server's is at warn here too) answering every path with a
  # static file of a bench manifest's size (490 bytes) from the same disk, measured by the same
  # client in the same interleaved runs. CEILING=0: without it.
  ceiling=()
  if [ "${CEILING:-1}" = 1 ]; then
    command -v nginx >/dev/null || { echo "needs nginx (apt-get install nginx-light), or CEILING=0" >&2; exit 1; }
    nginx_port=$(free_port)
    mkdir -p "$work/nginx/temp"
    head -c 490 /dev/zero | tr '\0' x > "$work/nginx/manifest.json"
    # nginx's workers run as an unprivileged user: they must reach the file.
    chmod a+rx "$work" "$work/nginx"
    chmod a+r "$work/nginx/manifest.json"
    cat > "$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log error;
daemon off;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 100000000;
  client_body_temp_path $work/nginx/temp/body;
  proxy_temp_path $work/nginx/temp/proxy;
  fastcgi_temp_path $work/nginx/temp/fastcgi;
  uwsgi_temp_path $work/nginx/temp/uwsgi;
  scgi_temp_path $work/nginx/temp/scgi;
  server {
    listen 127.0.0.1:$nginx_port;
    location / {
      default_type application/vnd.oci.image.manifest.v1+json;
      root $work/nginx;
      rewrite ^ /manifest.json break;
    }
  }
}
NGINX
    nginx -c "$work/nginx/nginx.conf" > "$work/nginx/stdout.log" 2>&1 &
    nginx_pid=$!
    trap 'kill ${nginx_pid:-} $dist_pid $wharf_pid 2>/dev/null || true; wait 2>/dev/null || true; [ "$storage" = s3 ] && bash .ci/garage.sh stop "$work/garage"; clean_work' EXIT
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$nginx_port/v2/x/manifests/t" > /dev/null && break; sleep 0.1; done
    echo "ceiling: $(nginx -v 2>&1), $(nproc) workers, a 490-byte static file"
    ceiling=(--ceiling "http://127.0.0.1:$nginx_port")
  fi
  ./target/release/examples/bench_registry \
    --target "http://127.0.0.1:$wharf_port" --server-pid "$wharf_pid" --target-name wharf-server \
    --baseline "http://127.0.0.1:$dist_port" --baseline-pid "$dist_pid" --baseline-name "distribution 2.8.2" \
    "${ceiling[@]}" \
    --runs "$runs" --scale "$scale" --seconds "$seconds" --warmup "$warmup" --markdown "$out/${suffix}table.md" "$@"
  [ -n "${nginx_pid:-}" ] && kill "$nginx_pid" 2>/dev/null || true
fi

# On fs: a plain `curl` pull of a 512 MiB blob from each registry, interleaved, next to the
# loopback limit above (curl writes to /dev/null; server CPU from /proc/<pid>/stat).
if [ "${TRUST_ONLY:-0}" != 1 ] && [ "$storage" = fs ] && [ "${AUTH_ONLY:-0}" != 1 ] && [ "${WEBHOOKS_ONLY:-0}" != 1 ]; then
  size=$((512 * 1024 * 1024 / scale))
  head -c "$size" /dev/urandom > "$work/curl-object"
  digest="sha256:$(sha256sum "$work/curl-object" | cut -d' ' -f1)"
  for port in "$wharf_port" "$dist_port"; do
    location=$(curl -fsS -D - -o /dev/null -X POST "http://127.0.0.1:$port/v2/bench/curl/blobs/uploads/" |
      awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
    case $location in http*) ;; *) location="http://127.0.0.1:$port$location" ;; esac
    case $location in *\?*) sep='&' ;; *) sep='?' ;; esac
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$work/curl-object" \
      -o /dev/null "$location${sep}digest=$digest"
  done
  rm -f "$work/curl-object"
  ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
  pull() { # port pid -> "MiB/s CPU-ticks"
    local before after speed
    before=$(ticks "$2")
    speed=$(curl -fsS -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$1/v2/bench/curl/blobs/$digest")
    after=$(ticks "$2")
    echo "$speed $((after - before))" | awk '{ printf "%.1f %d\n", $1 / 1048576, $2 }'
  }
  if [ "$warmup" != 0 ]; then pull "$wharf_port" "$wharf_pid" > /dev/null; pull "$dist_port" "$dist_pid" > /dev/null; fi
  : > "$work/curl-wharf"; : > "$work/curl-distribution"
  echo
  echo "curl pull of $((size / 1024 / 1024)) MiB, interleaved, $runs runs (MiB/s, server CPU ticks):"
  for run in $(seq 1 "$runs"); do
    # Alternate who goes first.
    if [ $((run % 2)) = 1 ]; then
      w=$(pull "$wharf_port" "$wharf_pid"); d=$(pull "$dist_port" "$dist_pid")
    else
      d=$(pull "$dist_port" "$dist_pid"); w=$(pull "$wharf_port" "$wharf_pid")
    fi
    echo "$w" >> "$work/curl-wharf"; echo "$d" >> "$work/curl-distribution"
    echo "  wharf-server $w   distribution $d"
  done
  median() { sort -n -k"$2" "$1" | awk -v k="$2" '{ v[NR] = $k } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
  range() { sort -n -k1 "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%s–%s", lo, hi }'; }
  cpu_per_gib() { awk -v t="$1" -v s="$size" 'BEGIN { printf "%.2f", t / 100 / (s / 1073741824) }'; }
  wm=$(median "$work/curl-wharf" 1); dm=$(median "$work/curl-distribution" 1)
  row="| pull $((size / 1024 / 1024)) MiB, curl to /dev/null | $wm MiB/s ($(range "$work/curl-wharf")) | $(cpu_per_gib "$(median "$work/curl-wharf" 2)") CPU-s/GiB | $dm MiB/s ($(range "$work/curl-distribution")) | $(cpu_per_gib "$(median "$work/curl-distribution" 2)") CPU-s/GiB | $(awk -v a="$wm" -v b="$dm" 'BEGIN { printf "%.2f×", a / b }') |"
  echo "$row"
  [ -f "$out/${suffix}table.md" ] && echo "$row" >> "$out/${suffix}table.md"

  # The mirror (issue 33): the same blob through a wharf-server whose [[upstream]] is the
  # distribution above. Uncached: a fresh mirror (its own storage) each run, so every pull
  # fetches from distribution while it streams to curl; cached: the same pull again. Next to
  # a direct pull from distribution and a plain pull from wharf-server, interleaved.
  cat > "$work/mirror.toml" <<TOML
[[upstream]]
name = "dist"
url = "http://127.0.0.1:$dist_port"
allow_private = true
TOML
  speed_of() { curl -fsS -o /dev/null -w '%{speed_download}' "$1" | awk '{ printf "%.1f\n", $1 / 1048576 }'; }
  # As a registry client pulls: every byte hashed and checked against the digest (openssl's
  # SHA-256, as fast as Go's and Rust's; coreutils' sha256sum is 8× slower here).
  verified_speed_of() {
    local t0 t1 got
    t0=$(date +%s%N)
    got=$(curl -fsS "$1" | openssl dgst -sha256 -r | cut -d' ' -f1)
    t1=$(date +%s%N)
    [ "sha256:$got" = "$digest" ] || { echo "pull of $1 did not verify" >&2; exit 1; }
    awk -v s="$size" -v ns="$((t1 - t0))" 'BEGIN { printf "%.1f\n", s / 1048576 / (ns / 1e9) }'
  }
  start_mirror() {
    mirror_port=$(free_port)
    rm -rf "$work/mirror"
    WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$mirror_port" --storage "fs:$work/mirror" \
      --config "$work/mirror.toml" > "$work/mirror.log" 2>&1 &
    mirror_pid=$!
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$mirror_port/v2/" > /dev/null && break; sleep 0.1; done
  }
  : > "$work/mirror-rows"
  echo
  echo "mirror, pull of $((size / 1024 / 1024)) MiB, $runs runs (MiB/s): direct from distribution, through the mirror uncached, cached, plain from wharf-server; then direct and uncached by a client that verifies the digest"
  for run in $(seq 0 "$runs"); do
    start_mirror
    direct=$(speed_of "http://127.0.0.1:$dist_port/v2/bench/curl/blobs/$digest")
    m0=$(ticks "$mirror_pid"); d0=$(ticks "$dist_pid")
    uncached=$(speed_of "http://127.0.0.1:$mirror_port/v2/dist/bench/curl/blobs/$digest")
    m1=$(ticks "$mirror_pid"); d1=$(ticks "$dist_pid")
    cached=$(speed_of "http://127.0.0.1:$mirror_port/v2/dist/bench/curl/blobs/$digest")
    plain=$(speed_of "http://127.0.0.1:$wharf_port/v2/bench/curl/blobs/$digest")
    kill "$mirror_pid"; wait "$mirror_pid" 2>/dev/null || true
    start_mirror
    direct_v=$(verified_speed_of "http://127.0.0.1:$dist_port/v2/bench/curl/blobs/$digest")
    uncached_v=$(verified_speed_of "http://127.0.0.1:$mirror_port/v2/dist/bench/curl/blobs/$digest")
    kill "$mirror_pid"; wait "$mirror_pid" 2>/dev/null || true
    # Run 0 warms the page cache and is not counted.
    [ "$run" = 0 ] && continue
    echo "$direct $uncached $cached $plain $((m1 - m0)) $((d1 - d0)) $direct_v $uncached_v" >> "$work/mirror-rows"
    echo "  direct $direct   uncached $uncached (CPU ticks: mirror $((m1 - m0)), distribution $((d1 - d0)))   cached $cached   plain $plain   verified: direct $direct_v   uncached $uncached_v"
  done
  rm -rf "$work/mirror"
  md=$(median "$work/mirror-rows" 1); mu=$(median "$work/mirror-rows" 2)
  mc=$(median "$work/mirror-rows" 3); mp=$(median "$work/mirror-rows" 4)
  mdv=$(median "$work/mirror-rows" 7); muv=$(median "$work/mirror-rows" 8)
  ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
  row="| mirror: pull $((size / 1024 / 1024)) MiB uncached (through wharf-server from distribution) / cached / plain from wharf-server | uncached $mu MiB/s = $(ratio "$mu" "$md") of direct ($md MiB/s); verifying client: $muv MiB/s = $(ratio "$muv" "$mdv") of direct ($mdv MiB/s) | mirror $(cpu_per_gib "$(median "$work/mirror-rows" 5)") CPU-s/GiB while uncached | cached $mc MiB/s = $(ratio "$mc" "$mp") of plain ($mp MiB/s) | | |"
  echo "$row"
  [ -f "$out/${suffix}table.md" ] && echo "$row" >> "$out/${suffix}table.md"
fi

# On S3 both registries answer blob GETs with a redirect to the engine: Garage's own GET of
# an object of the pull row's size, alone, is the row's physical limit.
if [ "$storage" = s3 ] && [ "${AUTH_ONLY:-0}" != 1 ]; then
  size=$((512 * 1024 * 1024 / scale))
  head -c "$size" /dev/urandom > "$work/garage-object"
  digest="sha256:$(sha256sum "$work/garage-object" | cut -d' ' -f1)"
  curl -fsS -X POST --data-binary "@$work/garage-object" -o /dev/null \
    "http://127.0.0.1:$wharf_port/v2/bench/garage/blobs/uploads/?digest=$digest"
  rm -f "$work/garage-object"
  echo
  echo "Garage alone: GET of a $((size / 1024 / 1024)) MiB object (presigned URL), curl, $runs runs:"
  for _ in $(seq 1 "$runs"); do
    url=$(curl -fsS -o /dev/null -w '%{redirect_url}' "http://127.0.0.1:$wharf_port/v2/bench/garage/blobs/$digest")
    curl -fsS -o /dev/null -w '  %{speed_download}\n' "$url" | awk '{ printf "  %.1f MiB/s\n", $1 / 1048576 }'
  done
fi

# Access control: wharf-server with an htpasswd file and rules (anonymous may pull bench/**,
# `bench` may push) against distribution with the same htpasswd file (it pays bcrypt on every
# request); manifest GET at concurrency 64 anonymously, with Basic and with a Bearer token.
if [ "${TRUST_ONLY:-0}" != 1 ] && [ "${SKIP_AUTH:-0}" != 1 ] && [ "${MIRROR_ONLY:-0}" != 1 ] && [ "${WEBHOOKS_ONLY:-0}" != 1 ] && [ "$storage" = fs ]; then
  echo
  echo "access control:"
  auth_dist_port=$(free_port)
  auth_wharf_port=$(free_port)
  mkdir -p "$work/auth-distribution" "$work/auth-wharf"
  printf 'bench-password\n' | ./target/release/wharf-server user add bench --htpasswd "$work/users.htpasswd" 2>/dev/null
  cat > "$work/auth.toml" <<TOML
[auth]
htpasswd = "users.htpasswd"

[[access]]
repositories = ["bench/**"]
anonymous = ["pull"]
users = { bench = ["pull", "push", "delete"] }
TOML
  sed -e "s|$work/distribution|$work/auth-distribution|" -e "s|127.0.0.1:$dist_port|127.0.0.1:$auth_dist_port|" \
    "$work/distribution.yml" > "$work/auth-distribution.yml"
  cat >> "$work/auth-distribution.yml" <<YAML
auth:
  htpasswd:
    realm: wharf-bench
    path: $work/users.htpasswd
YAML
  docker-registry serve "$work/auth-distribution.yml" > "$work/auth-distribution.log" 2>&1 &
  auth_dist_pid=$!
  WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$auth_wharf_port" \
    --storage "fs:$work/auth-wharf" --config "$work/auth.toml" > "$work/auth-wharf.log" 2>&1 &
  auth_wharf_pid=$!
  trap 'kill $dist_pid $wharf_pid $auth_dist_pid $auth_wharf_pid 2>/dev/null || true; wait 2>/dev/null || true; clean_work' EXIT
  for port in "$auth_dist_port" "$auth_wharf_port"; do
    for _ in $(seq 1 100); do curl -fs -u bench:bench-password "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.1; done
  done
  ./target/release/examples/bench_registry --only auth --credentials bench:bench-password \
    --target "http://127.0.0.1:$auth_wharf_port" --server-pid "$auth_wharf_pid" --target-name wharf-server \
    --baseline "http://127.0.0.1:$auth_dist_port" --baseline-pid "$auth_dist_pid" \
    --baseline-name "distribution 2.8.2 (htpasswd)" \
    --runs "$runs" --seconds "$seconds" --warmup "$warmup" --markdown "$out/auth-table.md"
fi

# Trust policies: wharf-server enforcing a policy over bench/** that trusts one P-256 key
# (made by openssl; every manifest signed with it in cosign's layout, verified by the server's
# job before the row starts) against wharf-server with no policy, same binary, both on the
# filesystem: manifest GET at concurrency 64, the cost of judging every pull.
if [ "${SKIP_TRUST:-0}" != 1 ] && [ "${MIRROR_ONLY:-0}" != 1 ] && [ "${AUTH_ONLY:-0}" != 1 ] && [ "${WEBHOOKS_ONLY:-0}" != 1 ] && [ "$storage" = fs ]; then
  echo
  echo "trust policy:"
  trust_port=$(free_port)
  plain_port=$(free_port)
  mkdir -p "$work/trust-wharf" "$work/plain-wharf"
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/signer.key"
  openssl ec -pubout -in "$work/signer.key" -out "$work/signer.pub" 2>/dev/null
  cat > "$work/trust.toml" <<TOML
[[trust_policy]]
name = "bench"
repositories = ["bench/**"]
mode = "enforce"
keys = ["signer.pub"]
TOML
  WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$trust_port" \
    --storage "fs:$work/trust-wharf" --config "$work/trust.toml" > "$work/trust-wharf.log" 2>&1 &
  trust_pid=$!
  WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$plain_port" \
    --storage "fs:$work/plain-wharf" > "$work/plain-wharf.log" 2>&1 &
  plain_pid=$!
  trap 'kill ${dist_pid:-} ${wharf_pid:-} ${auth_dist_pid:-} ${auth_wharf_pid:-} $trust_pid $plain_pid 2>/dev/null || true; wait 2>/dev/null || true; clean_work' EXIT
  for port in "$trust_port" "$plain_port"; do
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.1; done
  done
  ./target/release/examples/bench_registry --only trust --signing-key "$work/signer.key" \
    --target "http://127.0.0.1:$trust_port" --server-pid "$trust_pid" --target-name "wharf-server (enforce)" \
    --baseline "http://127.0.0.1:$plain_port" --baseline-pid "$plain_pid" --baseline-name "wharf-server (no policy)" \
    --runs "$runs" --seconds "$seconds" --warmup "$warmup" --markdown "$out/trust-table.md"
  kill "$trust_pid" "$plain_pid" 2>/dev/null || true
fi

# Webhooks: wharf-server with three webhooks (every event, every repository, signed, to a
# loopback receiver that answers 204) against wharf-server with none, same binary, both on
# the filesystem: image pushes one after the other, in stretches of 50 alternating between
# the two; the events are delivered meanwhile, and a stretch ends once they are.
if [ "${SKIP_WEBHOOKS:-0}" != 1 ] && [ "${TRUST_ONLY:-0}" != 1 ] && [ "${MIRROR_ONLY:-0}" != 1 ] && [ "${AUTH_ONLY:-0}" != 1 ] && [ "$storage" = fs ]; then
  echo
  echo "webhooks:"
  receiver_port=$(free_port)
  hooks_port=$(free_port)
  bare_port=$(free_port)
  mkdir -p "$work/hooks-wharf" "$work/bare-wharf"
  # The receiver stands in for a system elsewhere: bench_registry's own (HTTP/1.1 with
  # keep-alive, answering 204) at the lowest priority, so that its work on this
  # machine's cores weighs on the pushes as little as it can.
  nice -n 19 ./target/release/examples/bench_registry --receive-webhooks "$receiver_port" \
    > "$work/receiver.log" 2>&1 &
  receiver_pid=$!
  echo "whsec_$(head -c 32 /dev/urandom | base64)" > "$work/hook.secret"
  : > "$work/hooks.toml"
  for name in deploy scan audit; do
    cat >> "$work/hooks.toml" <<TOML
[[webhook]]
name = "$name"
url = "http://127.0.0.1:$receiver_port/$name"
secret_file = "hook.secret"
allow_private = true

TOML
  done
  WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$hooks_port" \
    --storage "fs:$work/hooks-wharf" --config "$work/hooks.toml" > "$work/hooks-wharf.log" 2>&1 &
  hooks_pid=$!
  WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$bare_port" \
    --storage "fs:$work/bare-wharf" > "$work/bare-wharf.log" 2>&1 &
  bare_pid=$!
  trap 'kill ${dist_pid:-} ${wharf_pid:-} ${auth_dist_pid:-} ${auth_wharf_pid:-} ${trust_pid:-} ${plain_pid:-} $receiver_pid $hooks_pid $bare_pid 2>/dev/null || true; wait 2>/dev/null || true; clean_work' EXIT
  for port in "$hooks_port" "$bare_port"; do
    for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/v2/" > /dev/null && break; sleep 0.1; done
  done
  ./target/release/examples/bench_registry --only webhooks \
    --target "http://127.0.0.1:$hooks_port" --server-pid "$hooks_pid" --target-name "wharf-server (3 webhooks)" \
    --baseline "http://127.0.0.1:$bare_port" --baseline-pid "$bare_pid" --baseline-name "wharf-server (none)" \
    --runs "$runs" --scale "$scale" --warmup "$warmup" --markdown "$out/webhooks-table.md"
  kill "$hooks_pid" "$bare_pid" "$receiver_pid" 2>/dev/null || true
fi
