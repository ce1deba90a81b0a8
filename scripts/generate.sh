#!/usr/bin/env bash
# Runs controller-gen over the API types and the reconcilers:
#   api/v1/zz_generated.deepcopy.go   DeepCopy methods (+kubebuilder:object markers)
#   config/crd/bases/*.yaml           the CustomResourceDefinitions, with their CEL rules
#   config/rbac/role.yaml             the operator's ClusterRole (+kubebuilder:rbac markers in controllers/)
#
# With an argument, writes those files under that folder instead of the
# repository (same relative paths), so a test can compare them with the
# committed ones. CONTROLLER_GEN names the binary; otherwise it is built or
# found by scripts/ensure-controller-gen.sh.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${1:-$ROOT}
CG=${CONTROLLER_GEN:-$(bash "$ROOT/scripts/ensure-controller-gen.sh")}

cd "$ROOT"
mkdir -p "$OUT/api/v1" "$OUT/config/crd/bases" "$OUT/config/rbac"
# Stale CRDs of a renamed or removed kind must not survive.
rm -f "$OUT"/config/crd/bases/*.yaml "$OUT/config/rbac/role.yaml"
"$CG" object:headerFile=hack/boilerplate.go.txt paths=./api/v1 output:object:dir="$OUT/api/v1"
"$CG" crd paths=./api/... output:crd:dir="$OUT/config/crd/bases"
"$CG" rbac:roleName=walship-operator paths=./controllers/... output:rbac:dir="$OUT/config/rbac"
