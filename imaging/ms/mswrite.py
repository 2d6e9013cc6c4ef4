"""Write a MeasurementSet v2 with python-casacore: the main table and its standard subtables.

One spectral window, one polarization setup, one field, one observation: what a simulated
observation needs, laid out the way CASA writes it so CASA, WSClean and python-casacore read it.
The main table's DATA and FLAG columns are fixed-shape (nchan, ncorr) per row and stored with
``TiledColumnStMan`` (as CASA does), so rows can be written in large blocks.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import casacore.tables as ct
import numpy as np

# Stokes enumeration of casacore (CORR_TYPE) and the receptor pair of each correlation.
STOKES = {"RR": 5, "RL": 6, "LR": 7, "LL": 8, "XX": 9, "XY": 10, "YX": 11, "YY": 12}
STOKES_NAMES = {code: name for name, code in STOKES.items()}
CORRELATION_SETS = (("RR", "LL"), ("XX", "YY"), ("RR", "RL", "LR", "LL"),
                    ("XX", "XY", "YX", "YY"))
_TOPO = 5  # MFrequency type of the channel frequencies (topocentric, as the VLA records them)


def _tile_rows(cell_bytes: int, tile_bytes: int = 262144) -> int:
    return max(1, tile_bytes // max(1, cell_bytes))


def create_main(path: str, nrows: int, nchan: int, ncorr: int) -> ct.table:
    """Create the MS at ``path`` with ``nrows`` empty rows; return the open main table.

    Adds DATA (complex64) and fixed shapes (nchan, ncorr) for DATA and FLAG and (ncorr,) for
    WEIGHT and SIGMA. The standard subtables are created empty (plus SOURCE).
    """
    shape = [nchan, ncorr]
    desc = ct.maketabdesc([
        ct.makearrcoldesc("DATA", 0j, valuetype="complex", shape=shape, options=4,
                          datamanagertype="TiledColumnStMan", datamanagergroup="TiledData",
                          comment="The data column"),
        ct.makearrcoldesc("FLAG", False, valuetype="boolean", shape=shape, options=4,
                          datamanagertype="TiledColumnStMan", datamanagergroup="TiledFlag",
                          comment="The data flags, array of bools with same shape as data"),
        ct.makearrcoldesc("WEIGHT", 0.0, valuetype="float", shape=[ncorr], options=4,
                          comment="Weight for each polarization spectrum"),
        ct.makearrcoldesc("SIGMA", 0.0, valuetype="float", shape=[ncorr], options=4,
                          comment="Estimated rms noise for channel with unity bandpass response"),
    ])
    dminfo = {
        "*1": {"TYPE": "TiledColumnStMan", "NAME": "TiledData", "COLUMNS": ["DATA"],
               "SPEC": {"DEFAULTTILESHAPE": [ncorr, nchan, _tile_rows(8 * nchan * ncorr)]}},
        "*2": {"TYPE": "TiledColumnStMan", "NAME": "TiledFlag", "COLUMNS": ["FLAG"],
               "SPEC": {"DEFAULTTILESHAPE": [ncorr, nchan, _tile_rows(nchan * ncorr // 8)]}},
    }
    main = ct.default_ms(path, desc, dminfo)
    source = os.path.join(path, "SOURCE")
    ct.default_ms_subtable("SOURCE", source).close()
    main.putkeyword("SOURCE", "Table: " + source)
    uvw_keywords = main.getcolkeywords("UVW")
    uvw_keywords["MEASINFO"] = {"type": "uvw", "Ref": "J2000"}
    main.putcolkeywords("UVW", uvw_keywords)
    main.addrows(nrows)
    return main


def _subtable(path: str, name: str, nrows: int) -> ct.table:
    table = ct.table(os.path.join(path, name), readonly=False, ack=False)
    table.addrows(nrows)
    return table


def write_antennas(path: str, names: Sequence[str], stations: Sequence[str],
                   positions: np.ndarray, diameter: float) -> None:
    """ANTENNA: one row per antenna; positions (nant, 3) ITRF metres."""
    nant = len(names)
    with _subtable(path, "ANTENNA", nant) as t:
        t.putcol("NAME", list(names))
        t.putcol("STATION", list(stations))
        t.putcol("TYPE", ["GROUND-BASED"] * nant)
        t.putcol("MOUNT", ["ALT-AZ"] * nant)
        t.putcol("POSITION", np.asarray(positions, dtype=np.float64))
        t.putcol("OFFSET", np.zeros((nant, 3)))
        t.putcol("DISH_DIAMETER", np.full(nant, float(diameter)))
        t.putcol("FLAG_ROW", np.zeros(nant, bool))


def write_spectral_window(path: str, freq: np.ndarray, width: float, name: str) -> None:
    """SPECTRAL_WINDOW: one window; freq (nchan,) channel centres (Hz), width (Hz) each."""
    nchan = len(freq)
    with _subtable(path, "SPECTRAL_WINDOW", 1) as t:
        t.putcell("NUM_CHAN", 0, nchan)
        t.putcell("NAME", 0, name)
        t.putcell("CHAN_FREQ", 0, np.asarray(freq, dtype=np.float64))
        for col in ("CHAN_WIDTH", "EFFECTIVE_BW", "RESOLUTION"):
            t.putcell(col, 0, np.full(nchan, float(width)))
        t.putcell("REF_FREQUENCY", 0, float(freq[0]))
        t.putcell("TOTAL_BANDWIDTH", 0, float(width) * nchan)
        t.putcell("MEAS_FREQ_REF", 0, _TOPO)
        t.putcell("NET_SIDEBAND", 0, 1)
        t.putcell("IF_CONV_CHAIN", 0, 0)
        t.putcell("FREQ_GROUP", 0, 0)
        t.putcell("FREQ_GROUP_NAME", 0, "")
        t.putcell("FLAG_ROW", 0, False)


def write_polarization(path: str, correlations: Sequence[str]) -> None:
    """POLARIZATION and DATA_DESCRIPTION: one row each (spectral window 0, polarization 0)."""
    receptor = {"R": 0, "L": 1, "X": 0, "Y": 1}
    with _subtable(path, "POLARIZATION", 1) as t:
        t.putcell("NUM_CORR", 0, len(correlations))
        t.putcell("CORR_TYPE", 0, np.array([STOKES[c] for c in correlations], np.int32))
        t.putcell("CORR_PRODUCT", 0, np.array([[receptor[c[0]], receptor[c[1]]]
                                               for c in correlations], np.int32))
        t.putcell("FLAG_ROW", 0, False)
    with _subtable(path, "DATA_DESCRIPTION", 1) as t:
        t.putcell("SPECTRAL_WINDOW_ID", 0, 0)
        t.putcell("POLARIZATION_ID", 0, 0)
        t.putcell("FLAG_ROW", 0, False)


def write_feeds(path: str, nant: int, receptors: str, time: float, interval: float) -> None:
    """FEED: one two-receptor feed per antenna ('RL' or 'XY'), ideal (no leakage)."""
    with _subtable(path, "FEED", nant) as t:
        t.putcol("ANTENNA_ID", np.arange(nant, dtype=np.int32))
        t.putcol("FEED_ID", np.zeros(nant, np.int32))
        t.putcol("SPECTRAL_WINDOW_ID", np.full(nant, -1, np.int32))
        t.putcol("BEAM_ID", np.full(nant, -1, np.int32))
        t.putcol("TIME", np.full(nant, time))
        t.putcol("INTERVAL", np.full(nant, interval))
        t.putcol("NUM_RECEPTORS", np.full(nant, 2, np.int32))
        t.putcol("BEAM_OFFSET", np.zeros((nant, 2, 2)))
        t.putcol("POLARIZATION_TYPE", np.array([list(receptors)] * nant))
        t.putcol("POL_RESPONSE", np.tile(np.eye(2, dtype=np.complex64), (nant, 1, 1)))
        t.putcol("POSITION", np.zeros((nant, 3)))
        t.putcol("RECEPTOR_ANGLE", np.zeros((nant, 2)))


def write_field(path: str, name: str, ra: float, dec: float, time: float,
                interval: float) -> None:
    """FIELD and SOURCE: one field (J2000 phase centre ra, dec in rad) and its source."""
    direction = np.array([[ra, dec]])
    with _subtable(path, "FIELD", 1) as t:
        t.putcell("NAME", 0, name)
        t.putcell("CODE", 0, "")
        t.putcell("TIME", 0, time)
        t.putcell("NUM_POLY", 0, 0)
        for col in ("DELAY_DIR", "PHASE_DIR", "REFERENCE_DIR"):
            t.putcell(col, 0, direction)
        t.putcell("SOURCE_ID", 0, 0)
        t.putcell("FLAG_ROW", 0, False)
    with _subtable(path, "SOURCE", 1) as t:
        t.putcell("SOURCE_ID", 0, 0)
        t.putcell("NAME", 0, name)
        t.putcell("CODE", 0, "")
        t.putcell("TIME", 0, time)
        t.putcell("INTERVAL", 0, interval)
        t.putcell("SPECTRAL_WINDOW_ID", 0, -1)
        t.putcell("NUM_LINES", 0, 0)
        t.putcell("CALIBRATION_GROUP", 0, 0)
        t.putcell("DIRECTION", 0, direction[0])
        t.putcell("PROPER_MOTION", 0, np.zeros(2))


def write_observation(path: str, telescope: str, time_range: tuple[float, float],
                      project: str, history: str, command: Sequence[str]) -> None:
    """OBSERVATION, STATE, PROCESSOR (one row each) and one HISTORY entry.

    time_range: (start, end) MJD seconds (UTC); ``history`` is the HISTORY message and
    ``command`` the command line that made the MS.
    """
    with _subtable(path, "OBSERVATION", 1) as t:
        t.putcell("TELESCOPE_NAME", 0, telescope)
        t.putcell("TIME_RANGE", 0, np.array(time_range, dtype=np.float64))
        t.putcell("OBSERVER", 0, "htclean")
        t.putcell("PROJECT", 0, project)
        t.putcell("RELEASE_DATE", 0, time_range[0])
        t.putcell("SCHEDULE_TYPE", 0, "")
        t.putcell("LOG", 0, np.array([""]))
        t.putcell("SCHEDULE", 0, np.array([""]))
        t.putcell("FLAG_ROW", 0, False)
    with _subtable(path, "STATE", 1) as t:
        t.putcell("SIG", 0, True)
        t.putcell("REF", 0, False)
        t.putcell("CAL", 0, 0.0)
        t.putcell("LOAD", 0, 0.0)
        t.putcell("SUB_SCAN", 0, 0)
        t.putcell("OBS_MODE", 0, "OBSERVE_TARGET#ON_SOURCE")
        t.putcell("FLAG_ROW", 0, False)
    with _subtable(path, "PROCESSOR", 1) as t:
        t.putcell("TYPE", 0, "CORRELATOR")
        t.putcell("SUB_TYPE", 0, "SIMULATOR")
        t.putcell("TYPE_ID", 0, 0)
        t.putcell("MODE_ID", 0, 0)
        t.putcell("FLAG_ROW", 0, False)
    with _subtable(path, "HISTORY", 1) as t:
        t.putcell("TIME", 0, time_range[0])
        t.putcell("OBSERVATION_ID", 0, 0)
        t.putcell("MESSAGE", 0, history)
        t.putcell("PRIORITY", 0, "NORMAL")
        t.putcell("ORIGIN", 0, "htclean")
        t.putcell("OBJECT_ID", 0, 0)
        t.putcell("APPLICATION", 0, "htclean")
        t.putcell("CLI_COMMAND", 0, np.array(list(command) or [""]))
        t.putcell("APP_PARAMS", 0, np.array([""]))


def write_rows(main: ct.table, start: int, *, time: np.ndarray, interval: float,
               ant1: np.ndarray, ant2: np.ndarray, uvw: np.ndarray, data: np.ndarray,
               flag: np.ndarray, weight: np.ndarray, sigma: np.ndarray) -> None:
    """Write one block of rows from ``start``: time (n,) MJD s, ant1/ant2 (n,), uvw (n, 3) m,
    data (n, nchan, ncorr) complex, flag (n, nchan, ncorr) bool, weight/sigma (n, ncorr)."""
    n = len(time)
    zeros = np.zeros(n, np.int32)
    columns = {
        "TIME": time, "TIME_CENTROID": time,
        "INTERVAL": np.full(n, interval), "EXPOSURE": np.full(n, interval),
        "ANTENNA1": ant1.astype(np.int32), "ANTENNA2": ant2.astype(np.int32),
        "FEED1": zeros, "FEED2": zeros, "ARRAY_ID": zeros, "DATA_DESC_ID": zeros,
        "FIELD_ID": zeros, "OBSERVATION_ID": zeros, "PROCESSOR_ID": zeros, "STATE_ID": zeros,
        "SCAN_NUMBER": np.ones(n, np.int32),
        "UVW": uvw, "DATA": data.astype(np.complex64), "FLAG": flag,
        "FLAG_ROW": flag.all(axis=(1, 2)),
        "WEIGHT": weight.astype(np.float32), "SIGMA": sigma.astype(np.float32),
    }
    for name, values in columns.items():
        main.putcol(name, values, start, n)
