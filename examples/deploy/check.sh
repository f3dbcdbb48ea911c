#!/usr/bin/env bash
# Checks the files in this folder without deploying anything:
#   - `scopegate check` on compose-scopegate.toml and on the configuration in
#     kubernetes.yaml's ConfigMap, with dummy values for the *_env variables;
#   - every YAML file parses (python3 with PyYAML);
#   - when the tools are installed: kubernetes-validate --strict (pip install
#     kubernetes-validate), check-jsonschema with the Compose spec (pip install
#     check-jsonschema), systemd-analyze verify (on a copy pointing at the
#     built binary, since /usr/local/bin/scopegate need not exist here).
# Run from anywhere; SCOPEGATE=/path/to/scopegate skips the cargo build.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [[ -z ${SCOPEGATE:-} ]]; then
    (cd "$root" && cargo build -q --bin scopegate)
    SCOPEGATE=$root/target/debug/scopegate
fi

# Dummy secrets: `check` needs every variable a *_env key names to be set.
export SCOPEGATE_APP_KEY=dummy-app-key SCOPEGATE_BUSINESS_PRIVATE_KEY=dummy-private-key \
    SCOPEGATE_SSO_SECURE_KEY=dummy-sso-key SCOPEGATE_APPLICATION_SECRET=dummy-app-secret \
    SCOPEGATE_DEMO_API_KEY=DUMMYDUMMYDUMMYDUMMYDUMMYDUMMY00 \
    SCOPEGATE_REDIS_URL=redis://:dummy@127.0.0.1:6379/0 \
    SCOPEGATE_ADMIN_TOKEN=dummy-admin-token-0123456789

echo "== scopegate check: compose-scopegate.toml"
"$SCOPEGATE" check --config "$here/compose-scopegate.toml" >/dev/null

echo "== scopegate check: kubernetes.yaml ConfigMap scopegate-config"
python3 - "$here/kubernetes.yaml" > "$tmp/k8s-scopegate.toml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "scopegate-config")
sys.stdout.write(cm["data"]["scopegate.toml"])
PY
"$SCOPEGATE" check --config "$tmp/k8s-scopegate.toml" >/dev/null

echo "== YAML parses"
python3 - "$here"/kubernetes.yaml "$here"/docker-compose.yml <<'PY'
import sys, yaml
for f in sys.argv[1:]:
    list(yaml.safe_load_all(open(f)))
PY

if command -v kubernetes-validate >/dev/null; then
    echo "== kubernetes-validate --strict kubernetes.yaml"
    kubernetes-validate --strict --quiet "$here/kubernetes.yaml"
else
    echo "-- kubernetes-validate not installed: skipped"
fi

if command -v check-jsonschema >/dev/null; then
    echo "== Compose spec: docker-compose.yml"
    check-jsonschema --builtin-schema vendor.compose-spec "$here/docker-compose.yml"
else
    echo "-- check-jsonschema not installed: skipped"
fi

if command -v systemd-analyze >/dev/null; then
    echo "== systemd-analyze verify scopegate.service"
    sed -e "s#/usr/local/bin/scopegate#$SCOPEGATE#g" \
        -e "s#/etc/scopegate/secrets.env#$tmp/secrets.env#" \
        "$here/scopegate.service" > "$tmp/scopegate.service"
    install -m 0600 /dev/null "$tmp/secrets.env"
    out=$(systemd-analyze verify "$tmp/scopegate.service" 2>&1) || { echo "$out"; exit 1; }
    # verify only warns about unknown keys or bad values: treat any output as a failure.
    if [[ -n $out ]]; then echo "$out"; exit 1; fi
else
    echo "-- systemd-analyze not available: skipped"
fi

echo "all checks passed"
