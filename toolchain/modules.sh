# Helpers of toolchain/build.sh, in a file of their own so a test can run them alone.

say() { printf 'toolchain: %s\n' "$*" >&2; }

# module_dir DIR MODULE[@VERSION]: the module's source directory, downloaded into the module cache when
# it is not there yet. (`go list -m -f '{{.Dir}}'` prints an empty line on a cold cache.) Without a
# version, the one DIR's go.mod requires. Fails, naming the module, when nothing comes back.
module_dir() {
    local dir
    dir=$(cd "$1" && go mod download -json "$2" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        echo "toolchain: could not download $2 (go mod download -json in $1 gave no directory)" >&2
        return 1
    fi
    printf '%s\n' "$dir"
}
