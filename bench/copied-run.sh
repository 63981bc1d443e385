#!/usr/bin/env bash
# Runs the benchmark suite on a machine without cargo or network, from
# release binaries built here (how bench/16-cores.md was made).
#
#   bench/copied-run.sh pack DIR          here: build, strip and gather the
#                                         binaries and the aiomultiprocess wheel
#   bench/copied-run.sh run DIR OUT [ALL-OPTIONS...]
#                                         there, from a copy of the repository
#                                         holding DIR: make bench/.venv from the
#                                         wheel and write OUT.md and OUT.svg
#
# DIR must be inside the repository (for the copy to carry it) and ignored
# by git; pass the options of `all` after OUT (e.g. --only W1x16,W4x16).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
    sed -n '2,13p' "$0" >&2
    exit 2
}

pack() {
    local dir=$1
    cargo build --release -p aiomp-bench --bins
    mkdir -p "$dir/release"
    for binary in aiomp-bench procspawn_peer tokio_exec; do
        strip -o "$dir/release/$binary" "target/release/$binary"
    done
    python3 -m pip download --quiet --no-deps --only-binary=:all: -d "$dir" aiomultiprocess==0.9.1
    git rev-parse --short HEAD >"$dir/commit"
    echo "packed $(du -sh "$dir" | cut -f1) into $dir (commit $(cat "$dir/commit"))"
}

run() {
    local dir=$1 out=$2
    shift 2
    # aiomultiprocess is pure Python: its wheel unzipped into a venv installs it.
    python3 -m venv --without-pip bench/.venv
    local site
    site=$(bench/.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
    python3 -m zipfile -e "$dir"/aiomultiprocess-0.9.1-py3-none-any.whl "$site"
    # The helpers beside aiomp-bench are used as they are when cargo is missing.
    AIOMP_BENCH_COMMIT=$(cat "$dir/commit") "$dir/release/aiomp-bench" all --output "$out.md" "$@"
}

case "${1:-}" in
    pack) [ $# -eq 2 ] || usage; pack "$2" ;;
    run) [ $# -ge 3 ] || usage; run "${@:2}" ;;
    *) usage ;;
esac
