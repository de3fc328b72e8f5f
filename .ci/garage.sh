#!/usr/bin/env bash
# Start a throw-away single-node Garage (S3-compatible) on loopback, for the S3 tests.
#
#   bash .ci/garage.sh start <state dir>   prints `export …` lines (WHARF_S3_URL, AWS_*) on stdout
#   bash .ci/garage.sh stop <state dir>    stops it and removes the state dir
#
# Garage >= 2.1 bootstraps itself with `server --single-node --default-bucket`: it assigns the
# layout, imports the key given in the environment and creates the bucket. No fsync: the data
# is thrown away after the run.
set -euo pipefail

cmd=${1:?usage: garage.sh start|stop <state dir>}
home=${2:?usage: garage.sh start|stop <state dir>}
garage_bin=${GARAGE_BIN:-garage}
# Ports: the first free trio from GARAGE_BASE_PORT (default 3900) up, so a second Garage on the
# machine (another CI run, a developer's) does not collide.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
base=${GARAGE_BASE_PORT:-3900}
while port_busy "$base" || port_busy $((base + 1)) || port_busy $((base + 3)); do
  base=$((base + 10))
done
s3_port=$base
rpc_port=$((base + 1))
admin_port=$((base + 3))

if [[ "$cmd" == stop ]]; then
  if [[ -f "$home/garage.pid" ]]; then
    pid=$(cat "$home/garage.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  # The data is throw-away (the S3 tests write over a GiB): leave nothing behind.
  rm -rf "$home"
  exit 0
fi

export GARAGE_DEFAULT_BUCKET=${BUCKET:-registry}
export GARAGE_DEFAULT_ACCESS_KEY="GK$(openssl rand -hex 12)"
export GARAGE_DEFAULT_SECRET_KEY="$(openssl rand -hex 32)"
rm -rf "$home"
mkdir -p "$home/meta" "$home/data"
cat > "$home/garage.toml" <<CONF
metadata_dir = "$home/meta"
data_dir = "$home/data"
db_engine = "lmdb"
metadata_fsync = false
data_fsync = false
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc_port"
rpc_public_addr = "127.0.0.1:$rpc_port"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3_port"
[admin]
api_bind_addr = "127.0.0.1:$admin_port"
admin_token = "$(openssl rand -hex 32)"
CONF
chmod 600 "$home/garage.toml"
RUST_LOG=${RUST_LOG:-garage=warn} nohup "$garage_bin" -c "$home/garage.toml" \
  server --single-node --default-bucket > "$home/garage.log" 2>&1 &
echo $! > "$home/garage.pid"

# Ready when a signed ListObjectsV2 on the bucket answers 200.
code=000
for _ in $(seq 1 600); do
  code=$(curl -s -o /dev/null -w '%{http_code}' \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    --aws-sigv4 "aws:amz:garage:s3" --user "$GARAGE_DEFAULT_ACCESS_KEY:$GARAGE_DEFAULT_SECRET_KEY" \
    "http://127.0.0.1:$s3_port/$GARAGE_DEFAULT_BUCKET?list-type=2&max-keys=1" || true)
  [[ "$code" == 200 ]] && break
  if ! kill -0 "$(cat "$home/garage.pid")" 2>/dev/null; then
    cat "$home/garage.log" >&2
    exit 1
  fi
  sleep 0.05
done
if [[ "$code" != 200 ]]; then
  echo "garage did not become ready (HTTP $code)" >&2
  cat "$home/garage.log" >&2
  exit 1
fi
cat <<OUT
export WHARF_S3_URL='s3://$GARAGE_DEFAULT_BUCKET?endpoint=http://127.0.0.1:$s3_port&region=garage'
export AWS_ACCESS_KEY_ID='$GARAGE_DEFAULT_ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$GARAGE_DEFAULT_SECRET_KEY'
export AWS_REGION='garage'
OUT
