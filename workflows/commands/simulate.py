"""Simulate a VLA observation: a Measurement Set of known sources, with thermal noise.

Writes OUT.ms and OUT.ms.sources.json, the truth: every source's RA/Dec, l/m, flux at the
reference frequency, spectral index, shape and pixel coordinates (FITS convention) in the truth
image geometry (--image-size, --cell; default the ones `htclean inspect` suggests).
Without options it writes the demo: VLA D, 3 h around transit at 1.4 GHz, 8 point sources.

A sources file (JSON or YAML) is a list, or a mapping with a `sources` list, of entries like
  {"flux": "10mJy", "offset": ["2amin", "-1amin"]}              # east, north (l, m)
  {"flux": 0.5, "position": "10h01m00s +40d05m00s", "spectral_index": -0.7}
  {"flux": "20mJy", "pixel_offset": [12, -30], "shape": "gaussian",
   "major": "30asec", "minor": "15asec", "pa": "45deg"}       # pixels: x to the west
  {"flux": 0, "offset": ["1amin", "0amin"],                     # a spectral line (Gaussian)
   "line": {"peak": "50mJy", "centre": "1500km/s", "fwhm": "40km/s",
            "rest_frequency": "1420.405752MHz"}}     # centre/fwhm in Hz or radio km/s
  {"flux": 0, "offset": ["-2amin", "1amin"],                    # a rotating disk (disk.py)
   "disk": {"flux": 5, "velocity": "1500km/s", "rest_frequency": "1420.405752MHz",
            "radius": "2amin", "inclination": "60deg", "pa": "30deg",
            "rotation": "150km/s", "dispersion": "20km/s"}}    # flux Jy km/s
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from htclean.imaging import units
from htclean.imaging.errors import InputError

HELP = "simulate a VLA observation: a Measurement Set with known sources and their truth"

_SOURCE_KEYS = ("name", "flux", "offset", "position", "pixel_offset", "spectral_index", "shape",
                "major", "minor", "pa", "line", "disk")
_LINE_KEYS = ("peak", "centre", "fwhm", "rest_frequency")
_DISK_KEYS = ("flux", "velocity", "rest_frequency", "radius", "inclination", "pa", "rotation",
              "dispersion", "samples")
_VELOCITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(km/s|m/s)\s*$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", help="the Measurement Set to write (a directory, e.g. demo.ms)")
    parser.add_argument("--configuration", default="D", choices=("A", "B", "C", "D"),
                        type=str.upper, help="VLA configuration (default D)")
    parser.add_argument("--phase-centre", "--phase-center", dest="phase_centre",
                        help="J2000 'RA Dec' (default '10h00m00s +40d00m00s')")
    parser.add_argument("--date", help="UTC date of the transit, YYYY-MM-DD (default 2024-03-20)")
    parser.add_argument("--freq", help="centre of the first channel (default 1.4GHz)")
    parser.add_argument("--nchan", type=int, help="channels (default 4)")
    parser.add_argument("--chan-width", help="channel width (default 16MHz)")
    parser.add_argument("--integration", help="integration time (default 600s)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument("--hour-angle", nargs=2, metavar=("START", "END"),
                      help="hour-angle range, e.g. -1.5h 1.5h (default)")
    when.add_argument("--duration", help="observing time centred on transit, e.g. 8h")
    parser.add_argument("--correlations", help="RR,LL (default), XX,YY, RR,RL,LR,LL or "
                        "XX,XY,YX,YY")
    parser.add_argument("--sources", help="sources file (JSON or YAML); default the demo sky")
    parser.add_argument("--noise", help="rms per real/imaginary part of each visibility "
                        "(default 20mJy; 0 for none)")
    parser.add_argument("--seed", type=int, help="random seed of noise and flags (default 1)")
    parser.add_argument("--flag-fraction", type=float,
                        help="fraction of samples flagged at random (default 0)")
    parser.add_argument("--image-size", type=int, help="truth image size N (default suggested)")
    parser.add_argument("--cell", help="truth image cell, e.g. 2asec (default suggested)")
    parser.add_argument("--ref-freq", help="the sources' reference frequency, where their flux "
                        "is given (default the band centre)")
    parser.add_argument("--primary-beam", action="store_true",
                        help="attenuate the sources by the VLA primary beam in each channel "
                        "(EVLA Memo 195); the truth then lists intrinsic and apparent fluxes")
    parser.add_argument("--force", action="store_true", help="overwrite an existing OUT.ms")


def _quantity(parser, value, name):
    try:
        return parser(value)
    except ValueError as exc:
        raise InputError(f"--{name}: {exc}") from None


def _hours(value: str, name: str) -> float:
    try:
        return float(value)
    except ValueError:
        return _quantity(units.duration, value, name) / 3600.0


def _source(entry, ref: str):
    from htclean.imaging.simulation.simulate import Source, parse_position

    if not isinstance(entry, dict):
        raise InputError(f"{ref}: expected a mapping with flux and a position, got {entry!r}")
    unknown = sorted(set(entry) - set(_SOURCE_KEYS))
    if unknown:
        raise InputError(f"{ref}: unknown key(s) {', '.join(unknown)}; expected "
                         f"{', '.join(_SOURCE_KEYS)}")
    if "flux" not in entry:
        raise InputError(f"{ref}: flux is missing")

    def value(key, parse, default=None):
        if key not in entry:
            return default
        try:
            return parse(entry[key])
        except (ValueError, TypeError, InputError) as exc:
            raise InputError(f"{ref}: {key}: {exc}") from None

    def pair(parse):
        def check(v):
            if not isinstance(v, (list, tuple)) or len(v) != 2:
                raise ValueError(f"expected a list of two values, got {v!r}")
            return float(parse(v[0])), float(parse(v[1]))
        return check

    kwargs = {"flux": value("flux", units.flux), "name": value("name", str, ""),
              "shape": value("shape", str, "point"),
              "spectral_index": value("spectral_index", float, 0.0),
              "major": value("major", units.angle, 0.0),
              "minor": value("minor", units.angle, 0.0),
              "pa": value("pa", lambda v: units.angle(v, "deg"), 0.0),
              "offset": value("offset", pair(units.angle)),
              "pixel_offset": value("pixel_offset", pair(float)),
              "radec": value("position", parse_position),
              "line": value("line", parse_line), "disk": value("disk", parse_disk)}
    try:
        return Source(**kwargs)
    except InputError as exc:
        raise InputError(f"{ref}: {exc}") from None


def _velocity(value: object) -> float | None:
    """km/s of '1500km/s' or '20000m/s'; None when ``value`` is not a velocity."""
    m = _VELOCITY.match(value) if isinstance(value, str) else None
    if m is None:
        return None
    return float(m.group(1)) * (1.0 if m.group(2) == "km/s" else 1e-3)


def parse_line(entry: object):
    """A sky.Line from a sources file's ``line`` mapping: peak (flux), centre (a frequency, or
    a radio velocity with rest_frequency), fwhm (Hz, or km/s with rest_frequency)."""
    from htclean.imaging.simulation.sky import Line
    from htclean.imaging.spectral.moments import C_KMS, radio_frequency

    if not isinstance(entry, dict):
        raise ValueError(f"expected a mapping with peak, centre and fwhm, got {entry!r}")
    unknown = sorted(set(entry) - set(_LINE_KEYS))
    missing = [k for k in ("peak", "centre", "fwhm") if k not in entry]
    if unknown or missing:
        raise ValueError(f"expected keys {', '.join(_LINE_KEYS)} (the first three required); "
                         f"unknown {unknown or 'none'}, missing {missing or 'none'}")
    rest = units.frequency(entry["rest_frequency"]) if "rest_frequency" in entry else None

    def hz(key: str, width: bool) -> float:
        v = _velocity(entry[key])
        if v is None:
            return units.frequency(entry[key])
        if rest is None:
            raise ValueError(f"{key} {entry[key]!r} is a velocity: give rest_frequency too")
        return rest * v / C_KMS if width else radio_frequency(v, rest)

    return Line(peak=units.flux(entry["peak"]), centre=hz("centre", False),
                fwhm=hz("fwhm", True), rest_frequency=rest)


def parse_disk(entry: object):
    """A disk.Disk from a sources file's ``disk`` mapping: flux (Jy km/s, a number), velocity,
    rest_frequency, radius; optional inclination, pa (deg by default), rotation, dispersion
    (km/s) and samples."""
    from htclean.imaging.simulation.disk import Disk

    if not isinstance(entry, dict):
        raise ValueError(f"expected a mapping with flux, velocity, rest_frequency and radius, "
                         f"got {entry!r}")
    unknown = sorted(set(entry) - set(_DISK_KEYS))
    missing = [k for k in _DISK_KEYS[:4] if k not in entry]
    if unknown or missing:
        raise ValueError(f"expected keys {', '.join(_DISK_KEYS)} (the first four required); "
                         f"unknown {unknown or 'none'}, missing {missing or 'none'}")

    def kms(key: str) -> float:
        v = _velocity(entry[key])
        if v is None:
            raise ValueError(f"{key} {entry[key]!r} is not a velocity such as '150km/s'")
        return v

    kwargs = {"flux": float(entry["flux"]), "velocity": kms("velocity"),
              "rest_frequency": units.frequency(entry["rest_frequency"]),
              "radius": units.angle(entry["radius"])}
    for key in ("inclination", "pa"):
        if key in entry:
            kwargs[key] = units.angle(entry[key], "deg")
    for key in ("rotation", "dispersion"):
        if key in entry:
            kwargs[key] = kms(key)
    if "samples" in entry:
        kwargs["samples"] = int(entry["samples"])
    try:
        return Disk(**kwargs)
    except InputError as exc:
        raise ValueError(str(exc).removeprefix("disk: ")) from None


def load_sources(path: str) -> list:
    """Sources of a JSON or YAML file: a list, or a mapping with a ``sources`` list."""
    import yaml

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InputError(f"cannot read sources file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise InputError(f"{path}: not valid JSON/YAML: {str(exc).splitlines()[0]}") from None
    entries = doc.get("sources") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise InputError(f"{path}: expected a non-empty list of sources")
    return [_source(e, f"{path}: source {i + 1}") for i, e in enumerate(entries)]


def build_spec(args: argparse.Namespace):
    """The SimulationSpec of the command line: the demo, with every option given replaced."""
    from dataclasses import replace

    from htclean.imaging.simulation.simulate import SIDEREAL_RATE, SimulationSpec, parse_position

    changes: dict = {"configuration": args.configuration}
    if args.phase_centre:
        changes["ra"], changes["dec"] = parse_position(args.phase_centre)
    if args.date:
        changes["date"] = args.date
    if args.freq:
        changes["freq0"] = _quantity(units.frequency, args.freq, "freq")
    if args.nchan is not None:
        changes["nchan"] = args.nchan
    if args.chan_width:
        changes["chan_width"] = _quantity(units.frequency, args.chan_width, "chan-width")
    if args.integration:
        changes["integration"] = _quantity(units.duration, args.integration, "integration")
    if args.hour_angle:
        changes["hour_angle_h"] = tuple(_hours(v, "hour-angle") for v in args.hour_angle)
    if args.duration:
        half = _quantity(units.duration, args.duration, "duration") / 7200.0 * SIDEREAL_RATE
        changes["hour_angle_h"] = (-half, half)
    if args.correlations:
        changes["correlations"] = tuple(c.strip() for c in args.correlations.split(","))
    if args.sources:
        changes["sources"] = tuple(load_sources(args.sources))
    if args.noise is not None:
        changes["noise"] = _quantity(units.flux, args.noise, "noise")
    for name in ("seed", "flag_fraction", "image_size"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.cell:
        changes["cell"] = _quantity(units.angle, args.cell, "cell")
    if getattr(args, "ref_freq", None):
        changes["ref_freq"] = _quantity(units.frequency, args.ref_freq, "ref-freq")
    if getattr(args, "primary_beam", False):
        changes["primary_beam"] = True
    return replace(SimulationSpec.demo(), **changes)


def run(args: argparse.Namespace) -> int:
    from htclean.imaging.simulation.simulate import simulate

    spec = build_spec(args)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(vars(args).items())
               if v not in (None, False) and k not in ("out", "command", "_run")]
    truth = simulate(args.out, spec, force=args.force,
                     command=["htclean", "simulate", args.out, *options])
    obs, image = truth["observation"], truth["image"]
    print(f"wrote {args.out}: VLA {obs['configuration']}, {obs['rows']} rows x {obs['nchan']} "
          f"channels x {len(obs['correlations'])} correlations = {obs['visibilities']} "
          f"visibilities")
    print(f"truth: {args.out}.sources.json ({len(truth['sources'])} sources; image "
          f"{image['size']} x {image['size']} at {units.format_angle(image['cell'])})")
    print(f"next: htclean inspect {args.out}")
    return 0
