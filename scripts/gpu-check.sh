#!/usr/bin/env bash
# Check KNNVOCAB_DEVICE=cuda on a GPU machine: the device tests (CUDA against the CPU on
# real photos) and the ingest and segment benchmarks, on an installed knnvocab.
#
#   scripts/gpu-check.sh [DIST ...]
#
# DIST: knnvocab wheels or sdists to install (e.g. dist/knnvocab-0.1.0-py3-none-any.whl).
# Without one, the repository this script is in is installed, non-editable (pip builds
# it). Run it from a checkout: the tests and the benches come from the checkout, but run
# from a copy without the source, so the knnvocab they import is the installed one.
#
# The machine may have its own Python and its own (CUDA) torch, and no Postgres:
#   1. a venv with --system-site-packages, so the machine's torch is used;
#   2. if torch and torchvision import there, the DISTs and open_clip_torch are installed
#      with --no-deps (their requirements would otherwise pull a torch from PyPI, likely
#      not the CUDA build this machine needs), then their other requirements, taken from
#      PyPI only where missing, with torch and torchvision pinned to the installed ones;
#      otherwise everything comes from PyPI, torch included;
#   3. prints the torch version and the CUDA device, and stops if CUDA is unusable;
#   4. with KNNVOCAB_HOME in a temporary folder, a SQLite catalog, the embedded
#      qdrant-edge store and KNNVOCAB_DEVICE=cuda runs
#        pytest -m gpu tests/embed/test_device.py
#        python bench/segment.py   (small sizes)
#        python bench/ingest.py    (small sizes)
#      and prints each step's result (the benchmarks' ratios too). About 2-5 minutes
#      after the install on a recent GPU.
#
# Needs the real photos of the Debian package labelme-examples under
# /usr/share/doc/labelme-examples (`apt-get install labelme-examples`, or copy the folder).
# No network is needed beyond PyPI (for missing packages).
#
# Environment: PYTHON (default python3); KNNVOCAB_DEVICE (default cuda; e.g. cuda:1);
# GPU_CHECK_DIR (work folder: venv, copies, logs; default a new temporary folder, kept);
# SEGMENT_ARGS, INGEST_ARGS (the benchmarks' options, defaults below).
# Exit status: 0 when every step passed, 1 when one failed, 2 when set-up failed.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
DEVICE="${KNNVOCAB_DEVICE:-cuda}"
WORK="${GPU_CHECK_DIR:-$(mktemp -d -t knnvocab-gpu-check.XXXXXX)}"
SEGMENT_ARGS="${SEGMENT_ARGS:---copies 1 --extra-points 20000 --repeat 2}"
INGEST_ARGS="${INGEST_ARGS:---copies 4 --repeat 2}"
EXAMPLES=/usr/share/doc/labelme-examples/examples
VPY="$WORK/venv/bin/python"

die() { echo "gpu-check: $*" >&2; exit 2; }
say() { echo; echo "== $*"; }

install_requirements() {
    # the requirements of the installed knnvocab and open_clip, less torch, torchvision
    # and timm (open_clip imports timm only for timm towers, which we refuse)
    "$VPY" - > "$WORK/requirements.txt" <<'EOF'
import importlib.metadata as md
import re

skip = {"torch", "torchvision", "timm", "open-clip-torch", "knnvocab"}
for dist in ("knnvocab", "open_clip_torch"):
    for req in md.requires(dist) or []:
        name = re.split(r"[\s<>=!~;\[(]", req, maxsplit=1)[0]
        if "extra ==" not in req and re.sub(r"[-_.]+", "-", name).lower() not in skip:
            print(req)
EOF
    "$VPY" - > "$WORK/constraints.txt" <<'EOF'
import importlib.metadata as md

for dist in ("torch", "torchvision"):
    print(f"{dist}=={md.version(dist)}")
EOF
    "$VPY" -m pip install -q -c "$WORK/constraints.txt" -r "$WORK/requirements.txt" \
        pytest pytest-timeout
}

install() {
    local dists=("$@")
    [ ${#dists[@]} -gt 0 ] || dists=("$REPO")
    "$PYTHON" -m venv --system-site-packages "$WORK/venv" || die "cannot create a venv with $PYTHON"
    if "$VPY" -c "import torch, torchvision" 2>/dev/null; then
        echo "using this machine's torch: installing knnvocab and open_clip with --no-deps"
        "$VPY" -m pip install -q --no-deps --force-reinstall "${dists[@]}" || die "pip failed"
        if ! "$VPY" -c "import open_clip" 2>/dev/null; then
            "$VPY" -m pip install -q --no-deps "open_clip_torch>=2.24" || die "pip failed"
        fi
        install_requirements || die "pip failed on knnvocab's other requirements"
    else
        echo "no torch + torchvision here: installing everything from PyPI, torch included"
        "$VPY" -m pip install -q "${dists[@]}" pytest pytest-timeout || die "pip failed"
    fi
}

show_device() {
    "$VPY" - "$DEVICE" <<'EOF'
import sys

import torch

import knnvocab

print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), knnvocab from {knnvocab.__file__}")
if not torch.cuda.is_available():
    sys.exit("torch.cuda.is_available() is False: no usable CUDA device or driver")
device = torch.device(sys.argv[1])
if device.type != "cuda":
    sys.exit(f"KNNVOCAB_DEVICE={sys.argv[1]} is not a CUDA device")
print(f"device {device}: {torch.cuda.get_device_name(device)}")
EOF
}

RESULTS=()
step() {
    # step NAME COMMAND...: run it in the copy, log it, remember PASS/FAIL and its ratio line
    local name="$1" log="$WORK/logs/$1.log" status
    shift
    say "$name: $*"
    (cd "$WORK/src" && "$@") 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    if [ "$name" = tests ] && grep -Eq "[0-9]+ skipped|no tests ran" "$log"; then
        status=1  # a skipped GPU test proves nothing
    fi
    local verdict="PASS"
    [ "$status" -eq 0 ] || verdict="FAIL (exit $status)"
    RESULTS+=("$name: $verdict $(grep -E '^ratio|passed|failed|skipped|error' "$log" | tail -n 1)")
}

[ -d "$EXAMPLES" ] || die "$EXAMPLES is missing: install the Debian package labelme-examples"
mkdir -p "$WORK/logs" "$WORK/src" || die "cannot write to $WORK"
echo "work folder: $WORK"
say "install"
install "$@"
say "torch and the device"
show_device || die "no CUDA here: this check needs a GPU"

cp -r "$REPO/tests" "$REPO/bench" "$REPO/pyproject.toml" "$WORK/src/"
export KNNVOCAB_HOME="$WORK/home"
export KNNVOCAB_DATABASE_URL="sqlite:///$WORK/home/catalog.sqlite3"
export KNNVOCAB_DEVICE="$DEVICE"
unset KNNVOCAB_QDRANT_URL  # the embedded qdrant-edge store
# shellcheck disable=SC2086  # the benchmarks' options are meant to split
{
    step tests "$VPY" -m pytest -m gpu tests/embed/test_device.py -p no:cacheprovider -rs
    step segment "$VPY" bench/segment.py --device "$DEVICE" $SEGMENT_ARGS
    step ingest "$VPY" bench/ingest.py --device "$DEVICE" $INGEST_ARGS
}

say "summary (logs in $WORK/logs)"
failed=0
for line in "${RESULTS[@]}"; do
    echo "  $line"
    [[ "$line" == *": PASS"* ]] || failed=1
done
exit "$failed"
