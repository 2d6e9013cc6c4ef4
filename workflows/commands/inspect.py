"""Describe a Measurement Set (a directory or a .ms.tar) and suggest the image geometry.

Prints rows, antennas, baselines, spectral windows, correlations, time range, fields, the
longest baseline, the flagged fraction, the size on disk and the data columns, then a cell
(synthesized beam / 4) and an image size (the primary-beam FWHM) to start from, as the
configuration keys image.scale and image.size. --json prints the same as one JSON object.
"""

from __future__ import annotations

import argparse
import json

from htclean.imaging import units

HELP = "what is in a Measurement Set; suggested cell and image size"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ms", help="the Measurement Set (directory) or a tar of one")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def format_text(info) -> str:
    """The human summary of an ``msinfo.MSInfo``, one fact per line."""
    from htclean.imaging.simulation.simulate import format_position

    spws = "; ".join(f"{w.id}: {w.nchan} x {w.chan_width / 1e6:.4g} MHz, "
                     f"{w.freq_min / 1e9:.6g}-{w.freq_max / 1e9:.6g} GHz"
                     for w in info.spectral_windows)
    fields = "; ".join(f"{f.id}: {f.name or '(no name)'} {format_position(f.ra, f.dec)}"
                       for f in info.fields)
    beam = 1.0 / info.longest_baseline_wavelengths
    lines = [
        ("Measurement Set", f"{info.path} ({units.format_bytes(info.size_bytes)})"),
        ("Telescope", f"{info.telescope or '(unnamed)'}: {info.antennas} antennas, "
                      f"{info.baselines} baselines, {info.dish_diameter:g} m dishes"),
        ("Rows", f"{info.rows} ({info.visibilities} visibilities, "
                 f"{100 * info.flagged_fraction:.3g}% flagged)"),
        ("Time (UTC)", f"{info.time_start} to {info.time_end} "
                       f"({info.duration_s / 3600:.3g} h)"),
        ("Spectral windows", f"{len(info.spectral_windows)} ({info.nchan_total} channels): "
                             f"{spws}"),
        ("Correlations", " ".join(info.correlations)),
        ("Fields", fields or "(none)"),
        ("Data columns", " ".join(info.data_columns) or "(none)"),
        ("Longest baseline", f"{info.longest_baseline_m / 1e3:.4g} km = "
                             f"{info.longest_baseline_wavelengths / 1e3:.4g} kilo-wavelengths"),
        ("Resolution", f"synthesized beam ~{units.format_angle(beam)}, primary beam FWHM "
                       f"{units.format_angle(info.primary_beam_fwhm)}"),
        ("Suggested image", f"image.size: {info.suggested_size}, image.scale: "
                            f"{units.format_angle(info.suggested_cell)}"),
    ]
    width = max(len(k) for k, _ in lines)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in lines)


def run(args: argparse.Namespace) -> int:
    from htclean.imaging.ms import msinfo

    info = msinfo.describe(args.ms)
    if args.json:
        print(json.dumps(info.to_dict(), indent=1))
    else:
        print(format_text(info))
    return 0
