"""The observations benchmarks/compare_casa.py has CASA simulate (casa_side.py's spec) and
images with htclean, WSClean and tclean, and the weightings it compares."""

from __future__ import annotations

import math

GAINS = [1.0, 0.9, 1.1, 1.2, 0.8, 1.05, 0.95, 1.0, 1.3, 0.7, 1.0, 0.9, 1.1, 1.0, 0.85, 1.15,
         1.0, 0.9, 1.1, 1.2, 0.8, 1.05, 0.95, 1.0, 1.3, 0.7, 1.0]


def _point(ra: float, dec: float, flux: float) -> dict:
    return {"ra_deg": ra, "dec_deg": dec, "flux": flux, "shape": "point"}


def _gauss(ra: float, dec: float, flux: float, major: float, minor: float, pa: float) -> dict:
    return {"ra_deg": ra, "dec_deg": dec, "flux": flux, "shape": "gaussian",
            "major_asec": major, "minor_asec": minor, "pa_deg": pa}


# key: (description, CASA simulation spec, imaging: field, column, size, cell asec, threshold Jy)
OBSERVATIONS = {
    "a": ("VLA C 3 GHz, 2 spw x 8 ch, XX XY YX YY, field 0, DATA", {
        "config": "c", "spw_freqs": [2.94e9, 3.06e9], "dnu": 16e6, "nchan": 8,
        "stokes": "XX XY YX YY", "integration_s": 60, "ref_freq": 3e9, "noise_jy": 0.05,
        "fields": [{"name": "F0", "ra_deg": 180.0, "dec_deg": 40.0, "components": [
            _point(180.0 + 10 * 15 / 3600 / math.cos(math.radians(40)), 40.0 + 1 / 60, 1.0),
            _gauss(180.0 - 10 * 15 / 3600 / math.cos(math.radians(40)), 40.0 - 2 / 60, 0.5,
                   20.0, 10.0, 30.0)]}],
        "scans": [[0, -1.0, 1.0]]},
        {"field": 0, "column": "DATA", "size": 256, "cell": 2.0, "threshold": 3e-4}),
    "b": ("VLA C 3 GHz, 2 spw x 8 ch, RR RL LR LL, field 1 of 2, CORRECTED_DATA (applycal "
          "calwt), WEIGHT_SPECTRUM, 26% flagged", {
              "config": "c", "spw_freqs": [2.94e9, 3.06e9], "dnu": 16e6, "nchan": 8,
              "stokes": "RR RL LR LL", "integration_s": 30, "ref_freq": 3e9, "noise_jy": 0.08,
              "fields": [
                  {"name": "J1150+2417", "ra_deg": 177.68292, "dec_deg": 24.28667,
                   "components": [_point(177.68292, 24.28667, 2.0)]},
                  {"name": "TARGET", "ra_deg": 182.5, "dec_deg": 20.0, "components": [
                      _point(182.5 + 90 / 3600, 20.025, 0.8),
                      _point(182.5 - 75 / 3600, 20.0 - 80 / 3600, 0.3),
                      _gauss(182.5 + 30 / 3600, 20.0 - 60 / 3600, 0.6, 24.0, 12.0, 60.0)]}],
              "scans": [[0, -1.0, -0.9], [1, -0.9, -0.4], [0, -0.4, -0.3], [1, -0.3, 0.2],
                        [0, 0.2, 0.3], [1, 0.3, 0.8], [0, 0.8, 0.9]],
              "weight_spectrum": True, "gains": GAINS,
              "flags": [{"antenna": "ea05"}, {"spw": "0:0~1"},
                        {"spw": "1", "correlation": "RR", "scan": "4"},
                        {"correlation": "RL", "scan": "7"},
                        {"antenna": "ea10&ea12", "spw": "1:3~5"}]},
          {"field": 1, "column": "CORRECTED_DATA", "size": 256, "cell": 2.0, "threshold": 1e-3}),
    "c": ("VLA C 1.3 GHz, 1 spw x 16 ch descending (LSB), XX YY, Dec -25, autocorrelations, "
          "20% flagged", {
        "config": "c", "spw_freqs": [1.42e9], "dnu": -8e6, "nchan": 16, "stokes": "XX YY",
        "integration_s": 60, "ref_freq": 1.36e9, "noise_jy": 0.04, "autocorrelations": True,
        "fields": [{"name": "LOWDEC", "ra_deg": 75.0, "dec_deg": -25.0, "components": [
            _point(75.0 + 12 * 15 / 3600 / math.cos(math.radians(25)), -25.0 + 3 / 60, 0.7),
            _gauss(75.0 - 15 * 15 / 3600 / math.cos(math.radians(25)), -25.0 - 4 / 60, 0.4,
                   40.0, 30.0, -20.0)]}],
        "scans": [[0, -1.5, 1.5]],
        "flags": [{"antenna": "ea20"}, {"spw": "0:7"},
                  {"timerange": "2024/03/01/02:50:00~2024/03/01/03:10:00"}]},
        {"field": 0, "column": "DATA", "size": 256, "cell": 4.0, "threshold": 4e-4}),
}
WEIGHTINGS = {"natural": {"type": "natural"}, "briggs": {"type": "briggs", "robust": 0.0}}
