"""The VLA HUDF campaign: HTClean's published December 2023 figures, the model's
reproduction of them with an HTClean-style graph, and htclean's prediction.

Sources: NRAO/OSG press release, March 2024 ("nearly 2 Terabytes", "more than 1 Terabyte of
data per hour"); arXiv:2508.17187 ("over 100 GPUs"); issue 21 (1650 jobs, 76 concurrent GPU
jobs at peak, 2.7 jobs/min and 1.5 TB/h in the fastest cycle, ~750 GPU hours, 5 days of
wall clock for ~24 hours of aggregate processing).

CHOSEN to fit the job count and the fastest cycle: 200 parts, 6 major cycles (with the PSF
and dirty passes: 8 passes of 200 jobs). ASSUMED: an 8192^2 image, 34.7 bytes of MS per
Stokes I visibility (the 4-correlation MS / part-file ratio, 4.28 x 8.1, issue-10 note).
FITTED (three, named): ``GPU_S_PER_GB`` (750 GPU hours), ``HUMAN_GAP_S`` (5 days), and the
htclean2023 pool's GPU queue-wait median (24 hours of processing).
"""

from __future__ import annotations

from dataclasses import dataclass

from htclean.workflows.campaign import htclean2023, metrics, simulate
from htclean.workflows.campaign.campaign import Campaign, from_config
from htclean.workflows.campaign.pool import Pool

DATA_BYTES = 2.0e12          # "nearly 2 Terabytes"
PARTS, CYCLES = 200, 6       # CHOSEN: 8 x (200 + 1) + 6 = 1614 jobs; ~200 jobs per pass
IMAGE_SIZE = 8192            # ASSUMED
MS_BYTES_PER_VIS = 34.7      # ASSUMED: 4 correlations (issue-10 note: 4.28 x 8.1 B)
GPU_S_PER_GB = 80.0          # FITTED to 750 GPU hours
HUMAN_GAP_S = 14 * 3600.0    # FITTED to 5 days: a person between passes (~overnight)
SEED = 1


@dataclass(frozen=True)
class Figure:
    name: str
    published: float
    unit: str

    def modelled(self, s: metrics.Summary) -> float:
        f = s.fastest
        return {"jobs": s.total_jobs, "peak GPU jobs": s.peak_gpu_jobs,
                "jobs/min, fastest cycle": f.jobs_per_min if f else 0.0,
                "TB/h, fastest cycle": f.tb_per_hour if f else 0.0,
                "GPU hours": s.gpu_hours, "wall clock": s.wall_s / 86400,
                "processing": s.processing_s / 3600,
                "processing share": s.processing_share}[self.name]


PUBLISHED = (Figure("jobs", 1650, ""), Figure("peak GPU jobs", 76, ""),
             Figure("jobs/min, fastest cycle", 2.7, "/min"),
             Figure("TB/h, fastest cycle", 1.5, "TB/h"), Figure("GPU hours", 750, "h"),
             Figure("wall clock", 5.0, "d"), Figure("processing", 24.0, "h"),
             Figure("processing share", 0.20, ""))


def htclean2023_run(pool: Pool, seed: int = SEED) -> metrics.Summary:
    """The HTClean-style graph of the campaign on ``pool`` (the htclean2023 file)."""
    shape = htclean2023.Htclean2023(DATA_BYTES, PARTS, CYCLES, IMAGE_SIZE, GPU_S_PER_GB,
                                    HUMAN_GAP_S)
    nodes = htclean2023.build(shape, pool.dagman_start_s)
    return metrics.summarise(nodes, simulate.simulate(nodes, pool, seed))


def htclean_campaign(parts: int = PARTS, device: str = "gpu") -> Campaign:
    """The same data, image and cycles as htclean would plan them (one MS tar on OSDF)."""
    raw = {"data": {"ms": "osdf:///ospool/ap40/data/user/hudf.ms.tar",
                    "size": int(DATA_BYTES)},
           "image": {"size": IMAGE_SIZE, "scale": "0.15asec"},
           "execution": {"site": "ospool", "staging": "osdf:///ospool/ap40/data/user/stage",
                         "request_cpus": 2, "request_memory": "16GB"},
           "gridder": {"device": device}, "partition": {"parts": parts},
           "deconvolution": {"max_cycles": CYCLES}}
    return from_config(raw, ".", data_bytes=DATA_BYTES,
                       visibilities=DATA_BYTES / MS_BYTES_PER_VIS, parts=parts, cycles=CYCLES)
