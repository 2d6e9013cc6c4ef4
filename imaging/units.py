"""Quantities as radio astronomers write them: ``3asec``, ``0.1mJy``, ``2GB``.

Every parser returns a float in one base unit (radians, Jy, bytes, Hz, seconds) and raises
``ValueError`` with a message that says what was expected.
"""

from __future__ import annotations

import math
import re

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_QUANTITY = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-zµ\"']*)\s*$")

ANGLE_UNITS = {
    "rad": 1.0,
    "deg": math.pi / 180.0,
    "amin": math.pi / 180.0 / 60.0,
    "arcmin": math.pi / 180.0 / 60.0,
    "'": math.pi / 180.0 / 60.0,
    "asec": math.pi / 180.0 / 3600.0,
    "arcsec": math.pi / 180.0 / 3600.0,
    '"': math.pi / 180.0 / 3600.0,
    "masec": math.pi / 180.0 / 3600.0e3,
    "mas": math.pi / 180.0 / 3600.0e3,
}
FLUX_UNITS = {"Jy": 1.0, "mJy": 1e-3, "uJy": 1e-6, "µJy": 1e-6, "nJy": 1e-9}
SIZE_UNITS = {
    "B": 1,
    "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
    "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40,
}
FREQ_UNITS = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
TIME_UNITS = {"s": 1.0, "sec": 1.0, "min": 60.0, "h": 3600.0, "hr": 3600.0, "d": 86400.0}


def _parse(value: object, units: dict[str, float], kind: str, default_unit: str | None) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected {kind}, got {value!r}")
    if isinstance(value, (int, float)):
        if default_unit is None:
            raise ValueError(f"expected {kind} with a unit ({', '.join(units)}), got {value!r}")
        return float(value) * units[default_unit]
    if not isinstance(value, str):
        raise ValueError(f"expected {kind}, got {value!r}")
    match = _QUANTITY.match(value)
    if not match:
        raise ValueError(f"expected {kind} such as 1{next(iter(units))}, got {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    if not unit:
        if default_unit is None:
            raise ValueError(f"{value!r} has no unit; expected one of {', '.join(units)}")
        unit = default_unit
    if unit not in units:
        raise ValueError(f"unknown unit {unit!r} in {value!r}; expected one of {', '.join(units)}")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number * units[unit]


def angle(value: object, default_unit: str | None = None) -> float:
    """Angle in radians from ``'3asec'``, ``'0.5deg'``, ``'2amin'``, ``'1.5e-5rad'``."""
    return _parse(value, ANGLE_UNITS, "an angle", default_unit)


def flux(value: object) -> float:
    """Flux density in Jy from ``'0.1mJy'``, ``'5uJy'`` or a plain number of Jy."""
    return _parse(value, FLUX_UNITS, "a flux density", "Jy")


BINARY_SIZE_UNITS = {**SIZE_UNITS, "kB": 2**10, "KB": 2**10, "MB": 2**20, "GB": 2**30,
                     "TB": 2**40}


def size_bytes(value: object, default_unit: str = "B", binary: bool = False) -> float:
    """A data size in bytes from ``'2GB'``, ``'512MiB'`` or a plain number (of default_unit).

    ``binary``: KB, MB, GB, TB are powers of 1024, as in HTCondor's request_memory/request_disk.
    """
    return _parse(value, BINARY_SIZE_UNITS if binary else SIZE_UNITS, "a size", default_unit)


def frequency(value: object) -> float:
    """Frequency in Hz from ``'1.4GHz'``, ``'100kHz'`` or a plain number of Hz."""
    return _parse(value, FREQ_UNITS, "a frequency", "Hz")


def duration(value: object) -> float:
    """Duration in seconds from ``'10s'``, ``'2h'`` or a plain number of seconds."""
    return _parse(value, TIME_UNITS, "a duration", "s")


def format_angle(radians: float) -> str:
    """Short human form of an angle: ``'2.5asec'``, ``'1.2amin'`` or ``'0.75deg'``."""
    asec = radians / ANGLE_UNITS["asec"]
    if abs(asec) < 120:
        return f"{asec:.4g}asec"
    if abs(asec) < 7200:
        return f"{asec / 60:.4g}amin"
    return f"{asec / 3600:.4g}deg"


def format_bytes(n: float) -> str:
    """Short human form of a size in bytes (decimal units, as ``du -h --si``)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000.0
    return f"{n:.3g}TB"
