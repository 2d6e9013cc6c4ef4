"""The GPU backend: its numpy path against ducc0, a direct DFT and the CPU deconvolvers; device
selection and the NVML monitor without a GPU. Tests marked ``gpu`` run the CuPy path and are
skipped, with the reason, where CuPy or a CUDA device is missing."""

from __future__ import annotations

import sys
import time
import types
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.integrate
import scipy.signal

from htclean.imaging.deconvolution import clean
from htclean.imaging.deconvolution.clean import CleanParams
from htclean.imaging.errors import InputError
from htclean.imaging.geometry import ImageGeometry
from htclean.imaging.gpu import device, gpu_clean, gpu_gridding, gpu_kernels, gpu_monitor, gpu_plan
from htclean.imaging.gridding import gridding as cpu_gridding

C = gpu_gridding.C


# --- data ----------------------------------------------------------------------------------


def observation(seed: int = 0, nrow: int = 300, spread: float = 300.0):
    """uvw (nrow, 3) m, freq (3,) Hz, vis and weight (nrow, 3): random, some weights 0."""
    rng = np.random.default_rng(seed)
    uvw = rng.normal(0.0, spread, (nrow, 3))
    freq = np.array([1.2e9, 1.4e9, 1.6e9])
    vis = rng.normal(size=(nrow, 3)) + 1j * rng.normal(size=(nrow, 3))
    weight = rng.uniform(0.5, 2.0, (nrow, 3))
    weight[::7, 1] = 0.0
    vis[::7, 1] = np.nan  # flagged samples may hold anything: weight 0 must skip them
    return uvw, freq, vis, weight


NARROW = ImageGeometry(nx=64, ny=48, cell=np.deg2rad(30 / 3600), ra=0.0, dec=0.5, freq=1.4e9)
WIDE = ImageGeometry(nx=48, ny=64, cell=np.deg2rad(3 / 60), ra=0.0, dec=0.5, freq=1.4e9)


def lmn(geom):
    y = (np.arange(geom.ny) - geom.ny // 2) * geom.cell
    x = (np.arange(geom.nx) - geom.nx // 2) * geom.cell
    ell, m = np.meshgrid(-x, y)
    return ell, m, np.sqrt(1.0 - ell**2 - m**2)


def dft_dirty(uvw, freq, vis, weight, geom, wgridding):
    """Re sum w V exp(-2 pi i (u l + v m + w (n - 1))) on image[y, x]."""
    ell, m, n = lmn(geom)
    out = np.zeros(geom.shape)
    for c, f in enumerate(freq):
        keep = weight[:, c] != 0
        u, v, w = (uvw[keep] * f / C).T
        phase = np.multiply.outer(u, ell) + np.multiply.outer(v, m)
        if wgridding:
            phase += np.multiply.outer(w, n - 1)
        out += np.einsum("r,rij->ij", vis[keep, c] * weight[keep, c],
                         np.exp(-2j * np.pi * phase)).real
    return out


def dft_predict(image, uvw, freq, geom, wgridding):
    """sum I exp(+2 pi i (u l + v m + w (n - 1))): (nrow, nchan)."""
    ell, m, n = lmn(geom)
    out = np.zeros((uvw.shape[0], freq.size), complex)
    for c, f in enumerate(freq):
        u, v, w = (uvw * f / C).T
        phase = np.multiply.outer(u, ell) + np.multiply.outer(v, m)
        if wgridding:
            phase += np.multiply.outer(w, n - 1)
        out[:, c] = np.einsum("ij,rij->r", image, np.exp(2j * np.pi * phase))
    return out


def params(wgridding=True, epsilon=1e-6, precision="double", device_="cpu"):
    return cpu_gridding.GridParams(wgridding=wgridding, epsilon=epsilon, precision=precision,
                                   threads=1, device=device_)


def sparse_model(geom, seed=5, count=12):
    rng = np.random.default_rng(seed)
    image = np.zeros(geom.shape)
    image[rng.integers(0, geom.ny, count), rng.integers(0, geom.nx, count)] = \
        rng.uniform(0.1, 1.0, count)
    return image


# --- the kernel ----------------------------------------------------------------------------


@pytest.mark.parametrize("support", [4, 6, 8, 12])
def test_tabulated_kernel_errors_are_reproduced(support):
    k = next(k for k in gpu_kernels.KERNELS if k.support == support)
    err = gpu_kernels.aliasing_error(k.support, k.beta, nx=257, nt=256)
    assert 0.9 * k.error <= err <= 1.02 * k.error


def test_tabulated_beta_is_a_minimum():
    k = next(k for k in gpu_kernels.KERNELS if k.support == 7)
    best = gpu_kernels.aliasing_error(7, k.beta)
    for factor in (0.97, 1.03):
        assert gpu_kernels.aliasing_error(7, k.beta * factor) > 1.5 * best


def test_derive_kernel_finds_the_tabulated_beta():
    k = next(k for k in gpu_kernels.KERNELS if k.support == 5)
    derived = gpu_kernels.derive_kernel(5, step=0.01, nx=33, nt=32)
    assert derived.beta == pytest.approx(k.beta, rel=0.01)
    assert derived.error <= 1.1 * k.error


def test_kernel_fourier_transform_matches_adaptive_quadrature():
    k = next(k for k in gpu_kernels.KERNELS if k.support == 8)
    for x in (0.0, 0.1, 0.25, 0.4):
        half, _ = scipy.integrate.quad(
            lambda s, x=x: float(gpu_kernels.evaluate(np, np.array(s), k, np.float64))
            * np.cos(2 * np.pi * x * s), 0, 4, epsabs=1e-15, epsrel=1e-12, limit=200)
        ref = 2 * half
        assert gpu_kernels.fourier(np.array(x), k) == pytest.approx(ref, rel=1e-11)


def test_choose_kernel_support_and_limits():
    assert gpu_kernels.choose_kernel(1e-5, 3).support == 7
    assert gpu_kernels.choose_kernel(1e-6, 2).support == 8
    assert gpu_kernels.choose_kernel(1e-6, 3).support == 9
    assert gpu_kernels.choose_kernel(1e-2, 2).support == 4
    with pytest.raises(InputError, match="single precision"):
        gpu_kernels.choose_kernel(1e-6, 2, "single")
    with pytest.raises(InputError, match="below what"):
        gpu_kernels.choose_kernel(1e-14, 3)


def test_good_size_is_smooth_and_even():
    assert gpu_plan.good_size(128) == 128
    assert gpu_plan.good_size(2 * 1001) == 2016  # 2^5 3^2 7
    n = gpu_plan.good_size(2 * 4097)
    assert n % 2 == 0 and n >= 8194


# --- the scatter-add ------------------------------------------------------------------------


def scatter_case(dtype, nvis=500, support=7, nu=(40, 36), seed=0):
    rng = np.random.default_rng(seed)
    real = np.float32 if dtype == np.complex64 else np.float64
    r0 = rng.integers(0, nu[0], nvis).astype(np.int32)
    r1 = rng.integers(0, nu[1], nvis).astype(np.int32)
    r0[:20], r1[:20] = nu[0] - 1, nu[1] - 2  # kernels that wrap around both edges
    k0 = rng.uniform(size=(nvis, support)).astype(real)
    k1 = rng.uniform(size=(nvis, support)).astype(real)
    val = (rng.normal(size=nvis) + 1j * rng.normal(size=nvis)).astype(dtype)
    return r0, r1, k0, k1, val


def reference_scatter(nu, r0, r1, k0, k1, val):
    grid = np.zeros(nu, np.complex128)
    for m in range(val.size):
        for j in range(k0.shape[1]):
            for k in range(k1.shape[1]):
                grid[(r0[m] + j) % nu[0], (r1[m] + k) % nu[1]] += val[m] * k0[m, j] * k1[m, k]
    return grid


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_scatter_add_numpy_and_cupyx_paths(monkeypatch, dtype):
    nu = (40, 36)
    case = scatter_case(dtype, nvis=60)
    ref = reference_scatter(nu, *case)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    grid = np.zeros(nu, dtype)
    gpu_kernels.scatter_add(np, grid, *case)
    assert np.abs(grid - ref).max() <= tol * np.abs(ref).max()
    # the cupyx branch (complex grid as interleaved reals) with numpy standing in for CuPy
    fake_xp = types.ModuleType("fakecupy")
    fake_xp.__getattr__ = lambda name: getattr(np, name)
    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(scatter_add=np.add.at))
    grid = np.zeros(nu, dtype)
    gpu_kernels.scatter_add(fake_xp, grid, *case, method="cupyx")
    assert np.abs(grid - ref).max() <= tol * np.abs(ref).max()
    with pytest.raises(ValueError, match="C-contiguous"):
        gpu_kernels.scatter_add(np, np.zeros((nu[1], nu[0]), dtype).T, *case)


# The RawKernel's CUDA source compiled as C++ for the CPU: built-ins emulated, one "thread" at
# a time, atomicAdd a plain add. It checks the kernel's indexing and bounds, not CUDA itself.
EMULATION = """
#include <cstdint>
struct dim3 { unsigned x; };
static dim3 blockIdx, blockDim, threadIdx;
#define __global__
template <typename T> static inline T atomicAdd(T* p, T v) { T old = *p; *p += v; return old; }
%s
extern "C" void launch(long long blocks, int threads, long long nvis, int support, int nu0,
                       int nu1, const int* r0, const int* r1, const REAL* k0, const REAL* k1,
                       const REAL* val, REAL* grid) {
    blockDim.x = threads;
    for (long long b = 0; b < blocks; ++b)
        for (int t = 0; t < threads; ++t) {
            blockIdx.x = (unsigned)b; threadIdx.x = t;
            grid_scatter_REAL(nvis, support, nu0, nu1, r0, r1, k0, k1, val, grid);
        }
}
"""


@pytest.fixture(scope="module")
def emulated_kernels(tmp_path_factory):
    """{"float": launch, "double": launch}: the scatter kernel source built for the CPU."""
    import ctypes
    import shutil
    import subprocess

    compiler = shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to emulate the CUDA scatter kernel")
    where = tmp_path_factory.mktemp("kernel")
    out = {}
    for real in ("float", "double"):
        src = where / f"{real}.cpp"
        src.write_text((EMULATION % gpu_kernels._SCATTER_SOURCE).replace("REAL", real))
        lib = where / f"{real}.so"
        subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(lib), str(src)],
                       check=True, capture_output=True)
        out[real] = ctypes.CDLL(str(lib)).launch
    return out


class EmulatedRawKernel:
    """Stands in for cupy.RawKernel(source, name): checks the launch arguments' types as CUDA
    would take them (long long, int, int*, REAL*) and runs the emulated kernel."""

    def __init__(self, kernels, source, name):
        self.real = name.rsplit("_", 1)[1]
        assert source == gpu_kernels._SCATTER_SOURCE.replace("REAL", self.real)
        self.launch = kernels[self.real]

    def __call__(self, grid, block, args):
        import ctypes

        nvis, support, nu0, nu1, r0, r1, k0, k1, val, cells = args
        rdtype = np.float32 if self.real == "float" else np.float64
        assert isinstance(nvis, np.int64)
        assert all(isinstance(a, np.int32) for a in (support, nu0, nu1))
        assert r0.dtype == r1.dtype == np.int32
        assert k0.dtype == k1.dtype == val.dtype == cells.dtype == rdtype
        assert all(a.flags.c_contiguous for a in (r0, r1, k0, k1, val, cells))
        assert grid[0] * block[0] >= nvis * support
        ptr = np.ctypeslib.as_ctypes
        self.launch(ctypes.c_longlong(grid[0]), ctypes.c_int(block[0]),
                    ctypes.c_longlong(int(nvis)), ctypes.c_int(int(support)),
                    ctypes.c_int(int(nu0)), ctypes.c_int(int(nu1)), ptr(r0), ptr(r1),
                    ptr(k0.reshape(-1)), ptr(k1.reshape(-1)), ptr(val), ptr(cells))


@pytest.mark.parametrize("real,dtype", [("float", np.complex64), ("double", np.complex128)])
def test_scatter_rawkernel_source_emulated_on_the_cpu(emulated_kernels, real, dtype):
    nu = (40, 36)
    r0, r1, k0, k1, val = scatter_case(dtype)
    kernel = EmulatedRawKernel(emulated_kernels, gpu_kernels._SCATTER_SOURCE.replace(
        "REAL", real), f"grid_scatter_{real}")
    grid = np.zeros(nu, dtype)
    threads = gpu_kernels._THREADS
    blocks = (val.size * k0.shape[1] + threads - 1) // threads
    kernel((blocks,), (threads,), (np.int64(val.size), np.int32(k0.shape[1]), np.int32(nu[0]),
                                   np.int32(nu[1]), r0, r1, k0, k1, val.view(k0.dtype),
                                   grid.reshape(-1).view(k0.dtype)))
    expected = np.zeros(nu, dtype)
    gpu_kernels.scatter_add(np, expected, r0, r1, k0, k1, val)
    tol = 1e-5 if dtype == np.complex64 else 1e-12
    assert np.abs(grid - expected).max() <= tol * np.abs(expected).max()


def numpy_cupy(kernels, free_bytes=2**30):
    """A module named cupy that is numpy underneath, with a CUDA runtime of one fake device
    and RawKernel emulated: runs every branch the GPU takes, except CUDA itself."""
    module = types.ModuleType("cupy")
    module.__getattr__ = lambda name: getattr(np, name)
    module.RawKernel = lambda source, name: EmulatedRawKernel(kernels, source, name)
    runtime = SimpleNamespace(getDeviceCount=lambda: 1,
                              getDeviceProperties=lambda i: {"name": b"NVIDIA Emulated"},
                              memGetInfo=lambda: (free_bytes, 2 * free_bytes))
    module.cuda = SimpleNamespace(runtime=runtime, Device=lambda: SimpleNamespace(id=0))
    return module


@pytest.fixture
def emulated_gpu(monkeypatch, emulated_kernels, fresh_probe):
    """cupy (numpy_cupy with 1 GiB free) and cupyx (numpy's add.at) in sys.modules."""
    module = numpy_cupy(emulated_kernels, free_bytes=2**30)
    monkeypatch.setitem(sys.modules, "cupy", module)
    monkeypatch.setitem(sys.modules, "cupyx", SimpleNamespace(scatter_add=np.add.at))
    gpu_kernels._raw_kernel.cache_clear()
    yield module
    gpu_kernels._raw_kernel.cache_clear()


@pytest.mark.parametrize("precision,epsilon", [("double", 1e-6), ("single", 1e-4)])
def test_gridder_on_an_emulated_gpu(emulated_gpu, precision, epsilon):
    uvw, freq, vis, weight = observation(13, spread=2000.0)
    p = params(True, epsilon, precision, "gpu")
    rounding = 1e-6 if precision == "single" else 1e-12  # other summation orders than numpy's
    ref = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np)
    for scatter in ("raw", "cupyx"):
        got = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, scatter=scatter, chunk=41)
        assert np.abs(got - ref).max() <= rounding * np.abs(ref).max()
    # a 16 kB device: rows split into blocks of 34 by the budget from memGetInfo
    emulated_gpu.cuda.runtime.memGetInfo = lambda: (2**16, 2**17)
    got = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, chunk=41)
    assert np.abs(got - ref).max() <= 2 * epsilon * np.abs(ref).max()
    emulated_gpu.cuda.runtime.memGetInfo = lambda: (2**30, 2**31)
    via_dispatch = cpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p)
    assert np.abs(via_dispatch - ref).max() <= rounding * np.abs(ref).max()
    image = sparse_model(WIDE)
    ref_v = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np)
    got_v = cpu_gridding.predict(image, uvw, freq, WIDE, p)
    assert np.abs(got_v - ref_v).max() <= rounding * np.abs(ref_v).max()


def test_grid_and_deconvolve_jobs_on_an_emulated_gpu(emulated_gpu, tmp_path, monkeypatch):
    import json

    import tinyms
    import yaml

    from htclean.executables import deconvolve, gather, grid

    ms = tmp_path / "tiny.ms"
    tinyms.write_ms(str(ms), tinyms.TinyObs(nchan=3, ntime=8, noise=0.01))
    monkeypatch.chdir(tmp_path)
    out = {}
    for dev in ("cpu", "gpu"):
        cfg = {"data": {"ms": str(ms)}, "image": {"size": 64, "scale": "2asec"},
               "output": {"run_id": "R"},
               "gridder": {"device": dev, "precision": "double", "epsilon": 1e-6},
               "deconvolution": {"niter": 100}}
        (tmp_path / "R-config.yml").write_text(yaml.safe_dump(cfg))  # 1.0e-06, a YAML float
        common = ["--config", "R-config.yml"]
        assert grid.main([*common, "--mode", "psf-dirty", "--part", str(ms), "--output",
                          f"i-{dev}.npz", "--record", f"R-grid-{dev}.record.json"]) == 0
        assert gather.main([*common, "--inputs", f"i-{dev}.npz", "--psf-fits",
                            f"psf-{dev}.fits", "--image-fits", f"dirty-{dev}.fits"]) == 0
        assert deconvolve.main([*common, "--cycle", "1", "--psf", f"psf-{dev}.fits",
                                "--residual", f"dirty-{dev}.fits", "--output-model",
                                f"model-{dev}.json", "--output-state", f"state-{dev}.json",
                                "--record", f"R-deconvolve-{dev}.record.json"]) == 0
        out[dev] = {job: json.loads((tmp_path / f"R-{job}-{dev}.record.json").read_text())
                    for job in ("grid", "deconvolve")}
        out[dev]["images"] = dict(np.load(tmp_path / f"i-{dev}.npz"))
        out[dev]["model"] = json.loads((tmp_path / f"model-{dev}.json").read_text())
        out[dev]["state"] = json.loads((tmp_path / f"state-{dev}.json").read_text())
    for job in ("grid", "deconvolve"):
        assert out["cpu"][job]["device"] == "cpu"
        assert out["gpu"][job]["device"] == "gpu:NVIDIA Emulated"
    for name in ("image_psf", "image_dirty"):
        a, b = out["gpu"]["images"][name], out["cpu"]["images"][name]
        assert np.abs(a - b).max() <= 1e-5 * np.abs(b).max()
    cpu_model, gpu_model = out["cpu"]["model"], out["gpu"]["model"]
    assert out["gpu"]["state"]["iterations"] == out["cpu"]["state"]["iterations"] > 10
    assert gpu_model["count"] == cpu_model["count"] >= 2
    assert (gpu_model["x"], gpu_model["y"]) == (cpu_model["x"], cpu_model["y"])
    assert np.allclose(gpu_model["flux"], cpu_model["flux"], rtol=1e-6, atol=0)


# --- the gridder on numpy --------------------------------------------------------------------


@pytest.mark.parametrize("wgridding", [False, True])
@pytest.mark.parametrize("precision,epsilon", [("double", 1e-6), ("single", 1e-4)])
def test_dirty_matches_dft(wgridding, precision, epsilon):
    uvw, freq, vis, weight = observation(1, spread=2000.0)
    ref = dft_dirty(uvw, freq, vis, weight, WIDE, wgridding)
    got = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, params(wgridding, epsilon, precision),
                             xp=np)
    assert got.shape == WIDE.shape and got.dtype == np.float64
    assert np.abs(got - ref).max() <= epsilon * np.abs(ref).max()


@pytest.mark.parametrize("wgridding", [False, True])
@pytest.mark.parametrize("precision,epsilon", [("double", 1e-6), ("single", 1e-4)])
def test_predict_matches_dft(wgridding, precision, epsilon):
    uvw, freq, _, _ = observation(2, spread=2000.0)
    image = sparse_model(WIDE)
    ref = dft_predict(image, uvw, freq, WIDE, wgridding)
    got = gpu_gridding.predict(image, uvw, freq, WIDE, params(wgridding, epsilon, precision),
                               xp=np)
    assert got.shape == ref.shape and got.dtype == np.complex128
    assert np.abs(got - ref).max() <= epsilon * np.abs(ref).max()


@pytest.mark.parametrize("geom", [NARROW, WIDE], ids=["narrow", "wide"])
def test_dirty_and_predict_match_ducc0(geom):
    uvw, freq, vis, weight = observation(3, spread=1500.0)
    p = params(True, 1e-7)
    ref = cpu_gridding.dirty(uvw, freq, vis, weight, geom, p)
    got = gpu_gridding.dirty(uvw, freq, vis, weight, geom, p, xp=np)
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()
    image = sparse_model(geom)
    ref_v = cpu_gridding.predict(image, uvw, freq, geom, p)
    got_v = gpu_gridding.predict(image, uvw, freq, geom, p, xp=np)
    assert np.abs(got_v - ref_v).max() <= 1e-6 * np.abs(ref_v).max()


def test_divide_by_n_as_ducc0():
    from ducc0.wgridder.experimental import vis2dirty

    uvw, freq, vis, weight = observation(4, spread=1500.0)
    w = np.where(weight != 0, weight, 0.0)
    v = np.where(weight != 0, vis, 0.0)
    ref = vis2dirty(uvw=uvw, freq=freq, vis=v, wgt=w, npix_x=WIDE.nx, npix_y=WIDE.ny,
                    pixsize_x=WIDE.cell, pixsize_y=WIDE.cell, epsilon=1e-7, do_wgridding=True,
                    flip_v=True, divide_by_n=True).T
    got = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, params(True, 1e-7), xp=np,
                             divide_by_n=True)
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


def test_predict_is_the_adjoint_of_dirty():
    uvw, freq, vis, _ = observation(5, spread=2000.0)
    vis, weight = np.nan_to_num(vis), np.ones(vis.shape)
    p = params(True, 1e-10)
    image = sparse_model(WIDE, count=30)
    lhs = np.vdot(gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np), vis).real
    rhs = np.sum(image * gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np))
    assert lhs == pytest.approx(rhs, rel=1e-9)


def test_row_blocks_and_chunks_equal_one_pass():
    uvw, freq, vis, weight = observation(6, spread=2000.0)
    p = params(True, 1e-6)
    one = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np)
    chunked = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np, chunk=37)
    assert np.abs(chunked - one).max() <= 1e-12 * np.abs(one).max()
    # 13 rows a block: 23 blocks, each with its own w-planes (so equal to within epsilon)
    budget = 13 * 3 * gpu_gridding.BYTES_PER_SAMPLE
    split = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np, chunk=37, budget=budget)
    exact = dft_dirty(uvw, freq, vis, weight, WIDE, True)
    assert np.abs(split - exact).max() <= 1e-6 * np.abs(exact).max()
    assert np.abs(split - one).max() > 1e-12 * np.abs(one).max()  # really split
    image = sparse_model(WIDE)
    v1 = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np)
    v2 = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np, chunk=53)
    assert np.abs(v2 - v1).max() <= 1e-12 * np.abs(v1).max()
    v3 = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np, chunk=53, budget=budget)
    assert np.abs(v3 - v1).max() <= 2e-6 * np.abs(v1).max()


def test_w_planes_cover_every_sample_and_sorting_keeps_them():
    uvw, freq, _, _ = observation(7, spread=3000.0)
    samples = gpu_gridding.Samples(np, uvw, freq, None, True)
    wmin, wmax = samples.w_range()
    plan = gpu_plan.make_plan(WIDE.ny, WIDE.nx, WIDE.cell, wmin, wmax, 1e-5, "double", True)
    assert plan.nplanes > plan.kernel.support  # really w-stacked
    t = (samples.w - plan.w_first) / plan.dw
    first = np.floor(t - plan.kernel.support / 2) + 1
    assert first.min() >= 0 and first.max() + plan.kernel.support <= plan.nplanes
    assert (samples.w >= 0).all() and samples.flip.any()
    tag = samples.index.astype(float)
    (tag,) = samples.sort(plan, tag)
    assert np.array_equal(tag, samples.index)  # others follow the samples
    planes = samples.first_plane(plan)
    assert (np.diff(planes) >= 0).all()
    for p in range(plan.nplanes):
        lo, hi = samples.plane_range(plan, p)
        touch = (planes <= p) & (p < planes + plan.kernel.support)
        assert np.array_equal(np.flatnonzero(touch), np.arange(lo, hi))


def test_weight_none_and_all_flagged():
    uvw, freq, vis, _ = observation(8)
    vis = np.nan_to_num(vis)
    p = params(False, 1e-6)
    ones = gpu_gridding.dirty(uvw, freq, vis, np.ones(vis.shape), NARROW, p, xp=np)
    assert np.array_equal(gpu_gridding.dirty(uvw, freq, vis, None, NARROW, p, xp=np), ones)
    zero = gpu_gridding.dirty(uvw, freq, vis, np.zeros(vis.shape), NARROW, p, xp=np)
    assert zero.shape == NARROW.shape and not zero.any()


def test_bad_shapes_are_input_errors():
    uvw, freq, vis, weight = observation(9)
    p = params()
    with pytest.raises(InputError, match="uvw"):
        gpu_gridding.dirty(uvw[:, :2], freq, vis, weight, NARROW, p, xp=np)
    with pytest.raises(InputError, match="vis and weight"):
        gpu_gridding.dirty(uvw, freq, vis[:, :2], weight, NARROW, p, xp=np)
    with pytest.raises(InputError, match="model image"):
        gpu_gridding.predict(np.zeros((8, 8)), uvw, freq, NARROW, p, xp=np)
    with pytest.raises(InputError, match="freq"):
        gpu_gridding.predict(np.zeros(NARROW.shape), uvw, -freq, NARROW, p, xp=np)


# --- device selection ----------------------------------------------------------------------


@pytest.fixture
def fresh_probe():
    device.probe.cache_clear()
    yield
    device.probe.cache_clear()


def fake_cupy(count=None, error=None, name=b"NVIDIA Fake 80GB"):
    def get_count():
        if error is not None:
            raise RuntimeError(error)
        return count

    runtime = SimpleNamespace(getDeviceCount=get_count,
                              getDeviceProperties=lambda i: {"name": name})
    cuda = SimpleNamespace(runtime=runtime, Device=lambda: SimpleNamespace(id=0))
    module = types.ModuleType("cupy")
    module.cuda = cuda
    return module


def test_select_without_cupy(monkeypatch, fresh_probe):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy -> ImportError
    assert device.select("cpu") is device.CPU
    auto = device.select("auto")
    assert auto.kind == "cpu" and auto.xp is np and auto.label == "cpu"
    assert "CuPy is not installed" in auto.reason
    with pytest.raises(InputError, match=r"^gridder.device is gpu but CuPy is not installed "
                                         r"\(pip install htclean\[gpu\]\)$"):
        device.select("gpu")
    with pytest.raises(InputError, match="gridder.device is gpu but CuPy is not installed"):
        cpu_gridding.dirty(*observation(0), NARROW, params(device_="gpu"))


def test_select_with_cupy_but_no_device(monkeypatch, fresh_probe):
    monkeypatch.setitem(sys.modules, "cupy",
                        fake_cupy(error="cudaErrorNoDevice: no CUDA-capable device is detected"))
    assert device.select("auto").kind == "cpu"
    with pytest.raises(InputError, match="gridder.device is gpu but CuPy finds no CUDA device "
                                         r"\(cudaErrorNoDevice"):
        device.select("gpu")
    device.probe.cache_clear()
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(count=0))
    with pytest.raises(InputError, match="no CUDA device"):
        device.select("gpu")


def test_select_with_a_device(monkeypatch, fresh_probe):
    fake = fake_cupy(count=1)
    monkeypatch.setitem(sys.modules, "cupy", fake)
    for setting in ("auto", "gpu"):
        d = device.select(setting)
        assert d.kind == "gpu" and d.xp is fake and d.label == "gpu:NVIDIA Fake 80GB"
    assert device.select("cpu").label == "cpu"
    with pytest.raises(InputError, match="gridder.device must be one of"):
        device.select("tpu")


# --- the monitor ---------------------------------------------------------------------------


def test_monitor_without_nvml(monkeypatch, fresh_probe):
    monkeypatch.setitem(sys.modules, "pynvml", None)
    with gpu_monitor.sampling(0.01) as mon:
        time.sleep(0.05)
    assert mon.samples == [] and mon.name is None
    assert "nvidia-ml-py" in mon.reason
    monkeypatch.setitem(sys.modules, "cupy", None)
    assert gpu_monitor.start() is None


def test_monitor_on_this_machine_says_why_or_samples():
    with gpu_monitor.sampling(0.02) as mon:
        time.sleep(0.1)
    if mon.reason is None:
        assert mon.samples and mon.name
    else:
        assert mon.samples == [] and "NVML" in mon.reason


def fake_nvml(fail_util=False):
    uuids = ["GPU-aaaa1111-0000", "GPU-bbbb2222-0000"]
    state = {"init": 0, "shutdown": 0}

    def util(handle):
        if fail_util:
            raise RuntimeError("NVML_ERROR_NOT_SUPPORTED")
        return SimpleNamespace(gpu=40 + handle)

    module = types.ModuleType("pynvml")
    module.nvmlInit = lambda: state.__setitem__("init", state["init"] + 1)
    module.nvmlShutdown = lambda: state.__setitem__("shutdown", state["shutdown"] + 1)
    module.nvmlDeviceGetCount = lambda: 2
    module.nvmlDeviceGetHandleByIndex = lambda i: i
    module.nvmlDeviceGetUUID = lambda h: uuids[h]
    module.nvmlDeviceGetName = lambda h: f"Fake GPU {h}".encode()
    module.nvmlDeviceGetUtilizationRates = util
    module.nvmlDeviceGetMemoryInfo = lambda h: SimpleNamespace(used=(h + 1) * 2**30)
    return module, state


def test_monitor_samples_the_jobs_gpu(monkeypatch):
    module, state = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb2222")
    with gpu_monitor.sampling(0.01) as mon:
        time.sleep(0.08)
    assert mon.reason is None and mon.name == "Fake GPU 1"
    assert len(mon.samples) >= 3
    assert {s["util"] for s in mon.samples} == {41.0}
    assert {s["mem_mb"] for s in mon.samples} == {2048.0}
    ts = [s["t"] for s in mon.samples]
    assert ts == sorted(ts)
    assert state == {"init": 1, "shutdown": 1}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-cccc")
    with gpu_monitor.sampling(0.01) as mon:
        pass
    assert mon.samples == [] and "no GPU with UUID 'GPU-cccc'" in mon.reason


def test_monitor_util_unsupported_is_none(monkeypatch):
    module, _ = fake_nvml(fail_util=True)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    with gpu_monitor.sampling(0.01) as mon:
        time.sleep(0.03)
    assert mon.samples and all(s["util"] is None and s["mem_mb"] == 1024.0
                               for s in mon.samples)


# --- the minor cycle on numpy --------------------------------------------------------------


def clean_problem(n=96, seed=3, dtype=np.float64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:2 * n, :2 * n] - n
    psf = np.exp(-(xx**2 + yy**2) / 8.0) + 0.05 * np.cos(xx / 3.0) * np.exp(-(xx**2 + yy**2)
                                                                           / 800.0)
    psf /= psf[n, n]
    model = np.zeros((n, n))
    model[rng.integers(5, n - 5, 15), rng.integers(5, n - 5, 15)] = rng.uniform(0.2, 1, 15)
    residual = scipy.signal.fftconvolve(model, psf, mode="same") + rng.normal(0, 0.01, (n, n))
    return residual.astype(dtype), psf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", ["hogbom", "clark", "multiscale"])
def test_xp_minor_cycle_equals_cpu(algorithm, dtype):
    residual, psf = clean_problem(dtype=dtype)
    p = CleanParams(algorithm=algorithm, niter=300, gain=0.1, mgain=0.9,
                    scales=(0.0, 4.0, 8.0))
    cpu = clean.minor_cycle(residual, psf, p, iterations_done=10, threshold=0.02)
    xp = gpu_clean.minor_cycle(residual, psf, p, iterations_done=10, threshold=0.02, xp=np)
    assert cpu.iterations > 50
    assert xp.components == cpu.components
    assert np.array_equal(xp.residual, cpu.residual) and xp.residual.dtype == dtype
    assert (xp.iterations, xp.stop_reason, xp.peak_start, xp.peak_end) == \
        (cpu.iterations, cpu.stop_reason, cpu.peak_start, cpu.peak_end)


def test_peak_ties_go_to_the_lowest_flat_index():
    image = np.zeros((6, 7))
    image[4, 2] = 3.0
    image[1, 5] = -3.0
    image[5, 6] = 3.0
    assert gpu_clean.find_peak(np, image) == clean.find_peak(image) == (1, 5, -3.0)
    image[1, 5] = 3.0
    assert gpu_clean.find_peak(np, image) == clean.find_peak(image) == (1, 5, 3.0)


def test_subtractor_fft_path_equals_shifted_psfs():
    residual, psf = clean_problem(n=64, seed=4)
    rng = np.random.default_rng(0)
    # at least the scale kernel's radius from the edges, as multiscale selects them (closer,
    # the FFT path clips the kernel at the edge and the shifted one does not)
    ys, xs = rng.integers(2, 62, 40), rng.integers(2, 62, 40)
    amps = rng.normal(size=40)
    for scale in (0.0, 4.0):
        direct, fft = residual.copy(), residual.copy()
        sub = gpu_clean.Subtractor(np, residual.shape, psf)
        sub.direct_limit = 10**6
        sub(direct, ys, xs, amps, scale)
        sub.direct_limit = 0
        sub(fft, ys, xs, amps, scale)
        assert np.allclose(direct, fft, rtol=0, atol=1e-12)


def test_xp_minor_cycle_input_errors():
    residual, psf = clean_problem(n=32)
    p = CleanParams()
    with pytest.raises(InputError, match="iterations_done"):
        gpu_clean.minor_cycle(residual, psf, p, iterations_done=-1, threshold=0.0, xp=np)
    with pytest.raises(InputError, match="psf must peak"):
        gpu_clean.minor_cycle(residual, -psf, p, iterations_done=0, threshold=0.0, xp=np)


# --- on a GPU ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cupy():
    module, name, reason = device.probe()
    if module is None:
        pytest.skip(f"no CUDA GPU: {reason}")
    return module


@pytest.mark.gpu
@pytest.mark.parametrize("scatter", ["raw", "cupyx"])
@pytest.mark.parametrize("wgridding", [False, True])
@pytest.mark.parametrize("precision,epsilon", [("double", 1e-6), ("single", 1e-4)])
def test_gpu_gridder_matches_numpy(cupy, scatter, wgridding, precision, epsilon):
    uvw, freq, vis, weight = observation(11, spread=2000.0)
    p = params(wgridding, epsilon, precision, "gpu")
    ref = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=np)
    got = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=cupy, scatter=scatter)
    assert np.abs(got - ref).max() <= 0.1 * epsilon * np.abs(ref).max()
    streamed = gpu_gridding.dirty(uvw, freq, vis, weight, WIDE, p, xp=cupy, scatter=scatter,
                                  chunk=41)
    assert np.abs(streamed - ref).max() <= 0.1 * epsilon * np.abs(ref).max()
    image = sparse_model(WIDE)
    ref_v = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=np)
    got_v = gpu_gridding.predict(image, uvw, freq, WIDE, p, xp=cupy)
    assert np.abs(got_v - ref_v).max() <= 0.1 * epsilon * np.abs(ref_v).max()


@pytest.mark.gpu
def test_gpu_dispatch_from_gridding_matches_ducc0(cupy):
    uvw, freq, vis, weight = observation(12, spread=2000.0)
    ref = cpu_gridding.dirty(uvw, freq, vis, weight, WIDE, params(True, 1e-6, "double", "cpu"))
    got = cpu_gridding.dirty(uvw, freq, vis, weight, WIDE, params(True, 1e-6, "double", "gpu"))
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


@pytest.mark.gpu
@pytest.mark.parametrize("algorithm", ["hogbom", "clark", "multiscale"])
def test_gpu_minor_cycle_matches_cpu(cupy, algorithm):
    residual, psf = clean_problem()
    p = CleanParams(algorithm=algorithm, niter=300, gain=0.1, mgain=0.9, scales=(0.0, 4.0, 8.0))
    cpu = clean.minor_cycle(residual, psf, p, iterations_done=0, threshold=0.02)
    gpu = gpu_clean.minor_cycle(residual, psf, p, iterations_done=0, threshold=0.02, xp=cupy)
    assert gpu.components.total_flux == pytest.approx(cpu.components.total_flux, rel=1e-6)
    assert np.abs(gpu.residual - cpu.residual).max() <= 1e-6 * cpu.peak_start


@pytest.mark.gpu
def test_gpu_selection_and_monitor(cupy):
    d = device.select("gpu")
    assert d.is_gpu and d.label.startswith("gpu:") and d.xp is cupy
    with gpu_monitor.sampling(0.05) as mon:
        time.sleep(0.2)
    assert mon.reason is None and mon.samples and mon.name
    started = gpu_monitor.start(0.05)
    assert started is not None
    assert started.stop()
