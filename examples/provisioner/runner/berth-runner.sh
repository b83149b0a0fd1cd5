#!/usr/bin/env bash
# berth-runner: runs one Terraform operation (plan, apply or destroy) of one cluster
# for berth-provisioner, inside the run's Kubernetes Job.
#
# - State lives in Terraform's `kubernetes` backend (Secret tfstate-default-<suffix>,
#   Lease lock-tfstate-default-<suffix> as Terraform's own lock). Terraform writes it
#   during the apply and after a failure; an errored.tfstate left by a failed final
#   push is pushed again, or kept in a Secret and reported.
# - set -euo pipefail: a failed terraform step fails the run (and its Job).
# - SIGTERM/SIGINT (pod deletion, Job deadline) and a cancel requested through the API
#   reach terraform as SIGINT, so it stops cleanly and saves its state.
# - Output goes to stdout (kubectl logs) and, in chunks, to ConfigMaps
#   <run>-log-<seq> that outlive the pod; progress goes to the run's ConfigMap <run>.
#
# Environment (set by berth-provisioner on the Job): BERTH_RUN_ID, BERTH_CLUSTER,
# BERTH_OPERATION, BERTH_NAMESPACE, BERTH_STATE_SUFFIX, TF_VAR_*; optional:
# BERTH_TF_MODULE (default /opt/berth/terraform), BERTH_KUBE_API (default: in-cluster),
# KUBE_CONFIG_PATH (Terraform's backend outside a cluster), BERTH_PUSH_BACKOFF (seconds
# between pushes of an errored.tfstate, default 5).
set -euo pipefail

: "${BERTH_RUN_ID:?}" "${BERTH_CLUSTER:?}" "${BERTH_OPERATION:?}" "${BERTH_NAMESPACE:?}" "${BERTH_STATE_SUFFIX:?}"
module="${BERTH_TF_MODULE:-/opt/berth/terraform}"
api="${BERTH_KUBE_API:-https://kubernetes.default.svc}"
sa=/var/run/secrets/kubernetes.io/serviceaccount
ns="$BERTH_NAMESPACE"
run="$BERTH_RUN_ID"
chunk_max=262144

work="$(mktemp -d)"
log="$work/run.log"
: >"$log"
cp -R "$module/." "$work/tf"
cd "$work/tf"
export TF_IN_AUTOMATION=1 TF_INPUT=0

# One call to the Kubernetes API; the body (if any) on stdin.
kube() {
    local method=$1 path=$2 type=${3:-application/json}
    local args=(-sS --fail -X "$method" -H "Content-Type: $type" -o /dev/null)
    [[ $method == GET ]] && args=(-sS --fail)
    [[ $method != GET ]] && args+=(--data-binary @-)
    if [[ -r $sa/token ]]; then
        args+=(-H "Authorization: Bearer $(<"$sa/token")" --cacert "$sa/ca.crt")
    fi
    curl "${args[@]}" "$api$path"
}

# Sets one key of the run's record (values here are plain words and digits).
report() {
    printf '{"data":{"%s":"%s"}}' "$1" "$2" |
        kube PATCH "/api/v1/namespaces/$ns/configmaps/$run" application/merge-patch+json ||
        echo "berth-runner: cannot report $1=$2" >&2
}

say() { echo "berth-runner: $*" >>"$log"; }

shipped=0
seq=0
# Sends the log's unsent bytes as the next chunk(s); on failure retries next time.
ship() {
    local size length name data
    size=$(stat -c %s "$log")
    while ((size > shipped)); do
        length=$((size - shipped))
        ((length > chunk_max)) && length=$chunk_max
        name=$(printf '%s-log-%06d' "$run" $((seq + 1)))
        data=$(tail -c +$((shipped + 1)) "$log" | head -c "$length" | base64 -w0)
        if printf '{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"%s","labels":{"app.kubernetes.io/managed-by":"berth-provisioner","berth.dev/object":"log","berth.dev/run":"%s","berth.dev/cluster":"%s"}},"binaryData":{"log":"%s"}}' \
            "$name" "$run" "$BERTH_CLUSTER" "$data" | kube POST "/api/v1/namespaces/$ns/configmaps"; then
            tail -c +$((shipped + 1)) "$log" | head -c "$length"
            seq=$((seq + 1))
            shipped=$((shipped + length))
        else
            echo "berth-runner: cannot ship the log; retrying" >&2
            return 0
        fi
    done
}

cancel_requested() {
    kube GET "/api/v1/namespaces/$ns/configmaps/$run" 2>/dev/null | grep -q '"cancel"'
}

tf_pid=""
interrupted=0
# SIGTERM/SIGINT: terraform gets SIGINT once and stops at a safe point.
forward() {
    say "received SIG$1"
    if [[ -n $tf_pid && $interrupted == 0 ]]; then
        interrupted=1
        kill -INT "$tf_pid" 2>/dev/null || true
    fi
}
trap 'forward TERM' TERM
trap 'forward INT' INT

# Runs terraform in the background, shipping logs and watching for a cancel.
tf() {
    say "terraform $*"
    terraform "$@" -no-color >>"$log" 2>&1 &
    tf_pid=$!
    while kill -0 "$tf_pid" 2>/dev/null; do
        sleep 1 || true
        ship
        if [[ $interrupted == 0 ]] && cancel_requested; then
            say "cancel requested: sending SIGINT to terraform"
            forward INT
        fi
    done
    local rc=0
    wait "$tf_pid" || rc=$?
    tf_pid=""
    say "terraform $1 exited $rc"
    return "$rc"
}

# After a failure: an errored.tfstate means terraform could not write its final state
# to the backend. It is pushed again (a few times, BERTH_PUSH_BACKOFF seconds apart,
# growing); if that fails too it is kept in the Secret <run>-errored-tfstate. The
# record's errored_state says which: pushed, saved-in-secret or lost.
rescue_state() {
    [[ -f errored.tfstate ]] || return 0
    say "errored.tfstate found: the final state push failed; pushing it to the backend again"
    local attempt backoff=${BERTH_PUSH_BACKOFF:-5}
    for attempt in 1 2 3; do
        if terraform state push -lock-timeout=120s errored.tfstate >>"$log" 2>&1; then
            say "errored.tfstate pushed"
            rm -f errored.tfstate
            report errored_state pushed
            return 0
        fi
        say "terraform state push errored.tfstate failed (attempt $attempt)"
        ((attempt < 3)) && sleep $((attempt * backoff))
    done
    say "cannot push errored.tfstate: keeping it in Secret $run-errored-tfstate"
    if printf '{"apiVersion":"v1","kind":"Secret","metadata":{"name":"%s-errored-tfstate","labels":{"app.kubernetes.io/managed-by":"berth-provisioner","berth.dev/run":"%s","berth.dev/cluster":"%s"}},"data":{"errored.tfstate":"%s"}}' \
        "$run" "$run" "$BERTH_CLUSTER" "$(base64 -w0 errored.tfstate)" |
        kube POST "/api/v1/namespaces/$ns/secrets"; then
        report errored_state saved-in-secret
    else
        say "cannot save errored.tfstate: the state of this run is lost"
        report errored_state lost
    fi
}

finish() {
    local rc=$?
    trap - TERM INT EXIT
    set +e
    if ((rc != 0)); then
        rescue_state
    fi
    local resources
    if [[ -f errored.tfstate ]]; then
        # Newer than the backend's state: count what it holds.
        resources=$(terraform show -no-color errored.tfstate 2>/dev/null | grep '^# ' | grep -cv '^# data\.\|\.data\.')
    else
        resources=$(terraform state list 2>/dev/null | grep -cv '^data\.\|\.data\.')
    fi
    [[ -n $resources ]] && report resources "$resources"
    if ((rc == 0)); then report phase succeeded; else report phase failed; fi
    say "run $run ended with status $rc"
    ship
    rm -rf "$work"
    exit "$rc"
}
trap finish EXIT

backend=(-backend-config="secret_suffix=$BERTH_STATE_SUFFIX" -backend-config="namespace=$ns")
if [[ -z ${KUBE_CONFIG_PATH:-} && -r $sa/token ]]; then
    backend+=(-backend-config="in_cluster_config=true")
fi

report phase planning
say "run $run: $BERTH_OPERATION of cluster $BERTH_CLUSTER"
tf init -input=false -lock-timeout=120s "${backend[@]}"
case "$BERTH_OPERATION" in
plan)
    tf plan -input=false -lock-timeout=120s
    ;;
apply)
    tf plan -input=false -lock-timeout=120s -out=run.tfplan
    report phase planned
    report phase applying
    tf apply -input=false -lock-timeout=120s run.tfplan
    ;;
destroy)
    report phase applying
    tf destroy -input=false -lock-timeout=120s -auto-approve
    ;;
*)
    say "unknown operation $BERTH_OPERATION"
    exit 2
    ;;
esac
