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

# shellcheck source=toolchain/modules.sh
source "$HERE/modules.sh"  # say, module_dir

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
    sdk=$(module_dir "$HERE/pulumi" github.com/pulumi/pulumi/sdk/v3)
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
    src=$(module_dir "$HERE/pulumi-kubernetes" github.com/pulumi/pulumi-kubernetes/provider/v4)
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

# Every CRD dr validates against or installs, from its project's own Go module at a pinned release, copied
# from the module cache into the toolchain cache (never into the checkout), one directory per release.
# dr reads them from there at run time (dr/kube/crds.py); a directory is complete once its stamp is
# written, so an interrupted copy is redone. kopiur is published by no registry: its CRDs come from the
# user (--crds DIR, DR_CRDS_DIR, the graph's crds:, the repository being imported, a live cluster).
#   directory                    module@version                                   files in the module
CRD_SOURCES=(
    "cloudnative-pg-1.26.1       github.com/cloudnative-pg/cloudnative-pg@v1.26.1       config/crd/bases/*.yaml"
    "plugin-barman-cloud-0.14.0  github.com/cloudnative-pg/plugin-barman-cloud@v0.14.0  config/crd/bases/*.yaml"
    "flux-source-controller-1.7.3    github.com/fluxcd/source-controller@v1.7.3     config/crd/bases/*.yaml"
    "flux-kustomize-controller-1.7.3 github.com/fluxcd/kustomize-controller@v1.7.3  config/crd/bases/*.yaml"
    "flux-helm-controller-1.4.3      github.com/fluxcd/helm-controller@v1.4.3       config/crd/bases/*.yaml"
    "cert-manager-1.16.1         github.com/cert-manager/cert-manager@v1.16.1           deploy/crds/crd-*.yaml"
    "velero-1.14.0               github.com/vmware-tanzu/velero@v1.14.0                 config/crd/v1/bases/*.yaml config/crd/v2alpha1/bases/*.yaml"
    "longhorn-1.7.2              github.com/longhorn/longhorn-manager@v1.7.2            k8s/crds.yaml"
    "external-dns-0.15.0         sigs.k8s.io/external-dns@v0.15.0                       charts/external-dns/crds/*.yaml"
    "argo-cd-2.13.9              github.com/argoproj/argo-cd/v2@v2.13.9                 manifests/crds/*-crd.yaml"
    "volsync-0.16.0              github.com/backube/volsync@v0.16.0                     config/crd/bases/*.yaml"
)
fetch_crds() {
    local directory=$1 module=$2 dest src pattern file count=0
    shift 2
    dest="$ROOT/crds/$directory"
    if [ -f "$dest/.complete" ]; then
        say "$directory CRDs: cached"
        return 0
    fi
    src=$(module_dir "$HERE" "$module")
    rm -rf "$dest" && mkdir -p "$dest"
    for pattern in "$@"; do
        for file in "$src"/$pattern; do
            [ -f "$file" ] || { echo "toolchain: $module has no $pattern" >&2; return 1; }
            install -m 0644 "$file" "$dest/"
            count=$((count + 1))
        done
    done
    printf '%s\n' "$module" > "$dest/.complete"
    say "$directory CRDs: $count files from $module into $dest"
}
for source in "${CRD_SOURCES[@]}"; do
    read -r -a fields <<< "$source"  # split on blanks, globs left for fetch_crds to expand in the module
    fetch_crds "${fields[@]}"
done

du -sh "$ROOT/$KEY" 2>/dev/null | awk '{print "toolchain: " $1 " on disk"}' >&2
echo "$BIN"
