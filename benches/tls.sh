#!/usr/bin/env bash
# Manifest GET by tag over TLS (HTTP/2 and HTTP/1.1) and over plain HTTP/1.1: wharf-server
# against Debian's nginx serving the same bytes as a static file, measured by h2load (C, one
# client thread, so the client takes as little of the machine as it can) in the same
# alternating rounds; medians of ROUNDS (3). Two wharf-servers share one fs folder: one with
# --tls-cert/--tls-key (a P-256 certificate made by openssl), one plain.
#
#   bash benches/tls.sh                       # needs h2load (apt-get install nghttp2-client)
#   ROUNDS=5 SECONDS_PER_ROW=8 bash benches/tls.sh  #                 and nginx (nginx-light)
#
# Writes the table to target/bench-compare/tls-table.md as well as stdout. h2load sends GETs
# only and reports no percentiles: the table has each side's mean and largest request time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
rounds=${ROUNDS:-3}
seconds=${SECONDS_PER_ROW:-4}
for tool in h2load nginx openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "needs $tool (h2load: apt-get install nghttp2-client; nginx: nginx-light)" >&2; exit 1; }
done
cargo build --release --locked -q -p wharf-server --bins

out="$root/target/bench-compare"
mkdir -p "$out"
work=$(mktemp -d "${BENCH_TMP:-$out}/tls.XXXXXX")
mkdir -p "$work/data" "$work/www/v2/bench/tls/manifests"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
plain_port=$(free_port) tls_port=$(free_port) nginx_port=$(free_port) nginx_tls_port=$(free_port)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$plain_port" --storage "fs:$work/data" \
  > "$work/plain.log" 2>&1 &
plain_pid=$!
WHARF_LOG=warn ./target/release/wharf-server --listen "127.0.0.1:$tls_port" --storage "fs:$work/data" \
  --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" > "$work/tls.log" 2>&1 &
tls_pid=$!
trap 'kill $plain_pid $tls_pid 2>/dev/null || true; [ -f "$work/nginx.pid" ] && nginx -c "$work/nginx.conf" -s stop 2>/dev/null; wait 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$plain_port/v2/" > /dev/null && break; sleep 0.1; done
for _ in $(seq 1 100); do curl -kfs "https://127.0.0.1:$tls_port/v2/" > /dev/null && break; sleep 0.1; done

# One image: a config, a layer, and a manifest of about the size of a real one.
base="http://127.0.0.1:$plain_port/v2/bench/tls"
printf '{"architecture":"amd64","os":"linux"}' > "$work/config"
printf 'layer bytes' > "$work/layer"
for blob in config layer; do
  digest=$(sha256sum "$work/$blob" | cut -d' ' -f1)
  curl -fs -X POST -H 'Content-Type: application/octet-stream' --data-binary "@$work/$blob" \
    "$base/blobs/uploads/?digest=sha256:$digest" > /dev/null
done
cat > "$work/manifest" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$(sha256sum "$work/config" | cut -d' ' -f1)","size":$(stat -c%s "$work/config")},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:$(sha256sum "$work/layer" | cut -d' ' -f1)","size":$(stat -c%s "$work/layer")}],"annotations":{"org.example.pad":"$(head -c 150 /dev/zero | tr '\0' x)"}}
JSON
curl -fs -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$work/manifest" \
  "$base/manifests/t" > /dev/null
cp "$work/manifest" "$work/www/v2/bench/tls/manifests/t"
chmod -R a+rX "$work"

# nginx: the same bytes as a static file, plain and over TLS with HTTP/2 (nginx 1.22's
# syntax); keep-alive without a request limit, as Wharf's, so neither side reconnects.
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000000;
  default_type application/vnd.oci.image.manifest.v1+json;
  server { listen 127.0.0.1:$nginx_port; root $work/www; }
  server {
    listen 127.0.0.1:$nginx_tls_port ssl http2;
    ssl_certificate $work/cert.pem;
    ssl_certificate_key $work/key.pem;
    root $work/www;
  }
}
NGINX
nginx -c "$work/nginx.conf"
path=/v2/bench/tls/manifests/t
for url in "https://127.0.0.1:$tls_port$path" "https://127.0.0.1:$nginx_tls_port$path" \
  "http://127.0.0.1:$plain_port$path" "http://127.0.0.1:$nginx_port$path"; do
  cmp -s <(curl -kfs "$url") "$work/manifest" || { echo "$url does not serve the manifest" >&2; exit 1; }
done

# One h2load run: "<req/s> <mean> <max>"; an error unless every request was answered 2xx.
measure() {
  local text
  text=$(h2load -D "$seconds" --warm-up-time=1 -c "$1" -m 1 -t 1 $3 "$2" 2>&1)
  local finished ok
  finished=$(grep -oP 'requests: \d+ total, \d+ started, \K\d+(?= done)' <<< "$text")
  ok=$(grep -oP 'status codes: \K\d+(?= 2xx)' <<< "$text")
  [ -n "$finished" ] && [ "$finished" -gt 0 ] && [ "$finished" = "$ok" ] \
    || { echo "h2load $2: $finished done, $ok 2xx" >&2; exit 1; }
  echo "$(grep -oP 'finished in .*?, \K[0-9.]+(?= req/s)' <<< "$text") $(grep -P '^time for request:' <<< "$text" | awk '{print $6, $5}')"
}

results="$work/results"
: > "$results"
for round in $(seq 1 "$rounds"); do
  for c in 16 64; do
    for row in "HTTP/2 over TLS|https|" "HTTP/1.1 over TLS|https|--h1" "HTTP/1.1, plain|http|--h1"; do
      IFS='|' read -r name scheme flags <<< "$row"
      if [ "$scheme" = https ]; then w=$tls_port n=$nginx_tls_port; else w=$plain_port n=$nginx_port; fi
      # Who goes first alternates round by round.
      if [ $((round % 2)) = 1 ]; then order="wharf nginx"; else order="nginx wharf"; fi
      for side in $order; do
        port=$w; [ "$side" = nginx ] && port=$n
        echo "$name|$c|$side|$(measure "$c" "$scheme://127.0.0.1:$port$path" "$flags")" >> "$results"
      done
      echo "  round $round, $name, concurrency $c: $(tail -2 "$results" | cut -d'|' -f3,4 | tr '\n' ' ')"
    done
  done
done

python3 - "$results" "$rounds" > "$out/tls-table.md" <<'PY'
import statistics, sys

def ms(text):
    """h2load's time (`850us`, `1.25ms`, `2.1s`) in milliseconds."""
    for unit, factor in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    raise ValueError(text)

rows = {}
for line in open(sys.argv[1]):
    name, c, side, measured = line.rstrip("\n").split("|")
    rate, mean, largest = measured.split()
    rows.setdefault((name, int(c)), {}).setdefault(side, []).append((float(rate), ms(mean), ms(largest)))
print(f"Manifest GET by tag, h2load -m 1 -t 1, medians of {sys.argv[2]} rounds (mean request time of the median run; largest over all runs)\n")
print("| protocol | concurrency | wharf-server | nginx, a static file | wharf / nginx |")
print("|---|---|---|---|---|")
for (name, c), sides in rows.items():
    cells, rates = [], {}
    for side in ("wharf", "nginx"):
        runs = sorted(sides[side])
        median = statistics.median(r[0] for r in runs)
        mid = runs[len(runs) // 2]
        rates[side] = median
        largest = max(r[2] for r in runs)
        cells.append(f"{median:,.0f} req/s (mean {mid[1]:.2f} ms, largest {largest:.1f} ms)")
    print(f"| {name} | {c} | {cells[0]} | {cells[1]} | **{rates['wharf'] / rates['nginx']:.0%}** |")
PY
echo
cat "$out/tls-table.md"
