#!/usr/bin/env python3
"""Init time of berth-lambda: process start to its first GET /runtime/invocation/next.

Usage: python3 examples/lambda/measure-init.py target/release/berth-lambda [runs]
Serves a Runtime API on loopback that never answers /next, starts the binary with the
Lambda variables and a valid berth configuration, and prints each run and the median.
"""
import http.server, os, statistics, subprocess, sys, threading, time

first_poll = threading.Event()

class Api(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            first_poll.set()
            time.sleep(5)  # hold the long poll; the process is killed meanwhile
    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Api)
threading.Thread(target=server.serve_forever, daemon=True).start()
env = dict(os.environ,
           AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_address[1]}",
           AWS_LAMBDA_FUNCTION_NAME="berth-lambda", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
           AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_REGION="us-east-1",
           AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_EC2_METADATA_DISABLED="true",
           BERTH_INSTANCE_TAGS="karpenter.sh/nodepool", BERTH_EIP_TAGS="pool=live",
           BERTH_HOSTED_ZONE_ID="Z0123456789", BERTH_DNS_SUFFIX="live.example.com",
           BERTH_LEDGER_TABLE="berth-ledger")
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
samples = []
for _ in range(runs):
    first_poll.clear()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.argv[1]], env=env, stdout=subprocess.DEVNULL)
    if not first_poll.wait(10):
        proc.kill()
        sys.exit("no /next within 10 s")
    samples.append((time.perf_counter() - start) * 1000)
    proc.kill()
    proc.wait()
print("runs (ms):", " ".join(f"{s:.1f}" for s in samples))
print(f"median {statistics.median(samples):.1f} ms, min {min(samples):.1f} ms, max {max(samples):.1f} ms")
