#!/usr/bin/env bash
# `make toolchain`: the real programs dr is tested against, built from the Go module proxy and cached
# outside the checkout. Only what is missing is built; a second run does nothing.
#
#   pulumi (CLI and engine), the Python dynamic-provider and exec scripts of the same SDK release
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl   (k8s.io/kubernetes)
#   etcd, etcdctl, etcdutl                                              (go.etcd.io/etcd 3.6)
#   kwok                                                                (sigs.k8s.io/kwok)
#   pulumi-resource-kubernetes 4.25.0                                   (pulumi-kubernetes provider)
#
# Binaries a user already has are used instead: `pulumi` on PATH, or envtest binaries in
# $KUBEBUILDER_ASSETS (kube-apiserver, etcd, kubectl), `pulumi-resource-kubernetes` on PATH or in the
# Pulumi plugin cache. The wrapper go.mod files beside this script are
# dr's own build files; no third-party source is committed.
#
# Prints the bin directory on its last line (`make toolchain` and dr read it).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PULUMI_VERSION=v3.259.0        # same release as the pinned PyPI `pulumi` (pyproject.toml)
KUBERNETES_VERSION=v1.34.4
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.7.0
KEY="pulumi-${PULUMI_VERSION}_k8s-${KUBERNETES_VERSION}_etcd-${ETCD_VERSION}_kwok-${KWOK_VERSION}"
ROOT="${DR_TOOLCHAIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dr/toolchain}"
BIN="$ROOT/$KEY/bin"
mkdir -p "$BIN"

export GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
PATH="$PATH:/usr/local/go/bin"
command -v go >/dev/null || { echo "toolchain: Go is not installed (Go 1.24 or newer builds the toolchain)" >&2; exit 2; }

say() { printf 'toolchain: %s\n' "$*" >&2; }

# build NAME... -- go build arguments: runs only when one of the named binaries is missing.
build() {
    local names=() arg
    while [ "$1" != "--" ]; do names+=("$1"); shift; done
    shift
    local missing=()
    for arg in "${names[@]}"; do [ -x "$BIN/$arg" ] || missing+=("$arg"); done
    if [ ${#missing[@]} -eq 0 ]; then
        say "${names[*]}: cached"
        return 0
    fi
    say "building ${names[*]} (cold builds take minutes; Go caches what it compiled)"
    local started=$SECONDS
    "$@"
    say "built ${names[*]} in $((SECONDS - started)) s"
}

# A binary the user already has: linked into the cache so the rest of dr finds one directory.
adopt() {
    local name=$1 path=$2
    if [ -x "$path" ] && [ ! -e "$BIN/$name" ]; then
        ln -s "$path" "$BIN/$name"
        say "$name: using $path"
    fi
}

if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
    for name in kube-apiserver etcd kubectl; do adopt "$name" "$KUBEBUILDER_ASSETS/$name"; done
fi
if command -v pulumi >/dev/null && [ "$(command -v pulumi)" != "$BIN/pulumi" ]; then
    adopt pulumi "$(command -v pulumi)"
fi

(cd "$HERE/etcd" && build etcd etcdctl etcdutl -- bash -c "
    go build -trimpath -ldflags '-s -w' -o '$BIN/etcd' go.etcd.io/etcd/server/v3 &&
    go build -trimpath -ldflags '-s -w' -o '$BIN/etcdctl' go.etcd.io/etcd/etcdctl/v3 &&
    go build -trimpath -ldflags '-s -w' -o '$BIN/etcdutl' go.etcd.io/etcd/etcdutl/v3")

minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    kube_ldflags+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    kube_ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done
(cd "$HERE/kubernetes" && build kube-apiserver kube-controller-manager kube-scheduler kubectl -- \
    go build -trimpath -ldflags "$kube_ldflags" -o "$BIN/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)

(cd "$HERE/kwok" && build kwok -- go build -trimpath -ldflags '-s -w' -o "$BIN/kwok" sigs.k8s.io/kwok/cmd/kwok)

(cd "$HERE/pulumi" && build pulumi -- go build -trimpath \
    -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$BIN/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)

# The SDK module of the same release ships the scripts the engine runs for Python dynamic providers.
if [ ! -x "$BIN/pulumi-resource-pulumi-python" ] || [ ! -x "$BIN/pulumi-language-python-exec" ]; then
    sdk=$(cd "$HERE/pulumi" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
    install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$BIN/pulumi-resource-pulumi-python"
    install -m 0755 "$sdk/python/cmd/pulumi-language-python-exec" "$BIN/pulumi-language-python-exec"
    say "pulumi-resource-pulumi-python, pulumi-language-python-exec: from the SDK module $PULUMI_VERSION"
fi

# The pulumi-kubernetes provider: served only at one pseudo-version, the v4.25.0 release. Its main
# package embeds a versioned schema that the module's generate.go writes, so main.go and its inputs are
# copied from the module cache into a build directory in the cache (never into the checkout) together
# with this wrapper's go.mod, generated there and built. A provider the user already has (on PATH or in
# the Pulumi plugin cache) is used instead.
K8S_PROVIDER_VERSION=4.25.0
if [ ! -e "$BIN/pulumi-resource-kubernetes" ]; then
    if command -v pulumi-resource-kubernetes >/dev/null; then
        adopt pulumi-resource-kubernetes "$(command -v pulumi-resource-kubernetes)"
    else
        for plugin in "${PULUMI_HOME:-$HOME/.pulumi}/plugins/resource-kubernetes-v$K8S_PROVIDER_VERSION/pulumi-resource-kubernetes"; do
            adopt pulumi-resource-kubernetes "$plugin"
        done
    fi
fi
build_provider() {
    local src work="$ROOT/build/pulumi-kubernetes-$K8S_PROVIDER_VERSION"
    src=$(cd "$HERE/pulumi-kubernetes" && go list -m -f '{{.Dir}}' github.com/pulumi/pulumi-kubernetes/provider/v4)
    rm -rf "$work" && mkdir -p "$work"
    install -m 0644 "$HERE/pulumi-kubernetes/go.mod" "$HERE/pulumi-kubernetes/go.sum" "$work/"
    for f in main.go generate.go schema.json terraform-mapping.json; do
        install -m 0644 "$src/cmd/pulumi-resource-kubernetes/$f" "$work/$f"
    done
    (cd "$work" && VERSION="$K8S_PROVIDER_VERSION" go run generate.go &&
        go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_PROVIDER_VERSION" \
            -o "$BIN/pulumi-resource-kubernetes" .)
}
build pulumi-resource-kubernetes -- build_provider

# CloudNativePG CRDs newer than the shared ones (1.24.1): recovery through the barman-cloud plugin
# (externalClusters[].plugin) needs 1.26. They are the upstream files of the release's Go module, read
# from the module proxy into the cache, never into the checkout.
CNPG_VERSION=v1.26.1
CRDS="$ROOT/crds/cloudnative-pg-${CNPG_VERSION#v}"
if [ ! -f "$CRDS/postgresql.cnpg.io_clusters.yaml" ]; then
    module=$(cd "$HERE" && go mod download -json "github.com/cloudnative-pg/cloudnative-pg@$CNPG_VERSION" \
             | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$CRDS"
    install -m 0644 "$module"/config/crd/bases/*.yaml "$CRDS/"
    say "CloudNativePG $CNPG_VERSION CRDs: from its module into $CRDS"
else
    say "CloudNativePG $CNPG_VERSION CRDs: cached"
fi

# Flux CRDs of a current release (v2.7: kustomize-controller 1.7.3, helm-controller 1.4.3, source-controller
# 1.7.3): the shared ones are Flux 2.4's, which refuse fields current repositories use (a Kustomization's
# healthCheckExprs and deletionPolicy). Read from each controller's Go module, into the cache.
FLUX_CRDS="$ROOT/crds/flux-2.7"
if [ ! -f "$FLUX_CRDS/kustomize.toolkit.fluxcd.io_kustomizations.yaml" ]; then
    mkdir -p "$FLUX_CRDS"
    for module in kustomize-controller@v1.7.3 helm-controller@v1.4.3 source-controller@v1.7.3; do
        dir=$(cd "$HERE" && go mod download -json "github.com/fluxcd/$module" \
              | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
        install -m 0644 "$dir"/config/crd/bases/*.yaml "$FLUX_CRDS/"
    done
    say "Flux 2.7 CRDs: from the controllers' modules into $FLUX_CRDS"
else
    say "Flux 2.7 CRDs: cached"
fi

du -sh "$ROOT/$KEY" 2>/dev/null | awk '{print "toolchain: " $1 " on disk"}' >&2
echo "$BIN"
