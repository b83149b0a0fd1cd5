#!/usr/bin/env bash
# Measures the figures in docs/benchmarks.md (berth-sidecar) on this machine:
#   1. resident memory (VmRSS, VmHWM) of the idle release sidecar, registered in two
#      groups of a local moto_server, plus /usr/bin/time -v's maximum RSS for the
#      whole run;
#   2. the time from `kill -TERM` to DeregisterTargets, with the e2e test that reads
#      it off the test harness's clock (FaultProxy in front of moto).
# Needs: moto_server and boto3 (pip install 'moto[server]'), GNU time. Loopback only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../../.."

port=${MOTO_PORT:-5055}
listen=127.0.0.1:${LISTEN_PORT:-18080}
bin=target/release/berth-sidecar
cargo build --release -p berth-sidecar --quiet

moto_server -H 127.0.0.1 -p "$port" >/tmp/berth-measure-moto.log 2>&1 &
moto=$!
trap 'kill $moto 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break; sleep 0.1; done

export AWS_ENDPOINT_URL=http://127.0.0.1:$port AWS_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_EC2_METADATA_DISABLED=true
python3 - <<'PY'
import os, boto3
kw = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
vpc = boto3.client("ec2", **kw).create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
elb = boto3.client("elbv2", **kw)
for name, port in (("web", 80), ("api", 8443)):
    elb.create_target_group(Name=name, Protocol="TCP", Port=port, VpcId=vpc, TargetType="ip")
PY

POD_IP=10.0.1.5 /usr/bin/time -v -o /tmp/berth-measure-time.txt \
    "$bin" --target-group web --target-group api --listen "$listen" --log-format json \
    2>/tmp/berth-measure-sidecar.log &
timed=$!
for _ in $(seq 200); do curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
curl -fsS "http://$listen/readyz"
pid=$(pgrep -n -f "^$bin ")
sleep 10   # idle: registered, ready, waiting for a signal
grep -E 'VmRSS|VmHWM' "/proc/$pid/status" | sed 's/^/idle after 10s: /'
for _ in $(seq 20); do curl -fsS "http://$listen/metrics" >/dev/null; done
grep -E 'VmRSS' "/proc/$pid/status" | sed 's/^/after 20 scrapes of \/metrics: /'
kill -TERM "$pid"
wait "$timed" || true
grep -E 'Maximum resident set size|Exit status' /tmp/berth-measure-time.txt

# SIGTERM -> DeregisterTargets on the harness clock (debug build, FaultProxy, moto).
cargo test -p berth-sidecar --test e2e sigterm_to_deregister_targets_is_quick -- --nocapture 2>&1 \
    | grep -E 'SIGTERM -> DeregisterTargets|test result'
