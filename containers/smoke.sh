#!/usr/bin/env bash
# Smoke test of the built image (containers/build.sh), from the repository root:
#
#     containers/smoke.sh [TAG]        (default htclean/htclean:0.1.0)
#
# Inside the image, as its non-root user: `htclean --help` and every console script's --help
# (setup.cfg's list); the GPU extras import, NVRTC (from the image's CUDA libraries) compiles
# htclean's CUDA scatter kernel, and CUDA reports no device (none is given to the container);
# then `htclean demo` runs inside and outside (this checkout's .venv, or $HTCLEAN_PY) and every
# FITS product must be equal bit for bit (data and header, DATE cards aside). Prints the
# versions of the numerical packages on both sides. About 1 minute. Exit 0 only if all pass.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-htclean/htclean:0.1.0}
DOCKER=${DOCKER:-docker}
PY=${HTCLEAN_PY:-.venv/bin/python}
run() { "$DOCKER" run --rm --network none "$@"; }

echo "smoke: $TAG"
user=$(run "$TAG" id -un)
[ "$user" != root ] || { echo "smoke: the image runs as root" >&2; exit 1; }
scripts=$(sed -n '/console_scripts/,/^\[/p' setup.cfg | grep -o '^ *htclean[a-z-]*' | tr -d ' ')
run "$TAG" bash -c "for s in $(echo $scripts); do \$s --help > /dev/null || { echo \"\$s --help failed\"; exit 1; }; done"
echo "smoke: --help of $(echo $scripts | wc -w) console scripts, as $user"

run -i "$TAG" python - <<'EOF'
import cupy, pynvml
from cupy_backends.cuda.libs import nvrtc
from htclean.imaging.gpu import gpu_kernels
src = gpu_kernels._SCATTER_SOURCE.replace("REAL", "float")
prog = nvrtc.createProgram(src, "scatter.cu", [], [])
nvrtc.compileProgram(prog, ["-arch=compute_80"])
ptx = nvrtc.getPTX(prog)
try:
    n = cupy.cuda.runtime.getDeviceCount()
except cupy.cuda.runtime.CUDARuntimeError as exc:
    n = f"none ({exc})"
print(f"smoke: cupy {cupy.__version__}, NVRTC {nvrtc.getVersion()} compiled the scatter "
      f"kernel ({len(ptx)} bytes of PTX), nvidia-ml-py imported; CUDA devices: {n}")
EOF

work=$(mktemp -d /tmp/htclean-smoke.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/inside" && chmod 1777 "$work/inside"
t0=$(date +%s)
"$PY" -m htclean.workflows.cli demo "$work/outside" > "$work/outside.log" 2>&1 ||
    { tail "$work/outside.log"; exit 1; }
t1=$(date +%s)
run -v "$work/inside:/work" -w /work "$TAG" htclean demo /work/demo > "$work/inside.log" 2>&1 ||
    { tail "$work/inside.log"; exit 1; }
t2=$(date +%s)
echo "smoke: demo outside $((t1 - t0)) s, inside $((t2 - t1)) s"

versions='import importlib.metadata as m; print(" ".join(f"{p}={m.version(p)}" for p in
    ("numpy", "ducc0", "scipy", "astropy", "python-casacore")))'
echo "smoke: outside $("$PY" -c "$versions")"
echo "smoke: inside  $(run "$TAG" python -c "$versions")"
# The comparison runs in the image: both trees mounted read-only.
run -i -v "$work/outside/run/outputs:/a:ro" -v "$work/inside/demo/run/outputs:/b:ro" "$TAG" python - <<'EOF'
import sys
import numpy as np
from astropy.io import fits
bad = 0
for kind in ("image", "model", "residual", "psf", "dirty"):
    a, b = (fits.open(f"{d}/demo-{kind}.fits")[0] for d in ("/a", "/b"))
    same = a.data.tobytes() == b.data.tobytes()
    ha, hb = ({k: v for k, v in h.header.items() if not k.startswith("DATE")} for h in (a, b))
    diff = float(np.max(np.abs(a.data - b.data)) / np.max(np.abs(a.data)))
    print(f"smoke: demo-{kind}.fits {'identical' if same else f'DIFFERS (max {diff:.1e} of peak)'}"
          f"{'' if ha == hb else ', headers differ'}")
    bad += not same or ha != hb
sys.exit(bad)
EOF
echo "smoke: passed"
