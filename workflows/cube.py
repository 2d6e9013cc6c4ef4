"""Spectral cubes as independent channel workflows (``image.mode: cube``).

A cube's output channel ``g`` (``image.width`` MS channels from ``image.start + g * width``)
is imaged exactly as an mfs run of those channels: its own configuration
(``config-chNNNN.yml``: the run's, with ``image.mode`` mfs, ``image.start``/``nchan`` its
channels, ``image.name`` ``NAME-NNNN`` (WSClean's per-channel names), ``output.group`` g and
no previews), its own parts, weights, PSF, loop of major cycles and restore, as a chain of
sub-workflows of the top level that nothing else waits on; one ``cube`` job at the top level
stacks the channels' products into the cube files once every channel's chain has finished.

``htclean plan`` reads the MSs' channels first (``spectral_window``): one spectral window,
channels that coincide between MSs, a selection and a width that fit, line-free channels
inside the window; each problem is one InputError naming the key.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from htclean.imaging.errors import InputError
from htclean.workflows import names
from htclean.workflows.context import RunContext

SAME_FREQUENCY = 1e-6  # channels coincide when they differ by less than this x the spacing


@dataclass(frozen=True)
class Window:
    """The imaged spectral window: channel frequencies (Hz, stored order), SPECSYS, and
    (for a cube) which channels hold an unflagged sample of the imaged rows (else None)."""
    freq: np.ndarray
    specsys: str
    unflagged: np.ndarray | None = None


def _window(ms: Path, data: dict, flags: bool = False) -> Window:
    """The one spectral window of ``ms`` that the run images (InputError if several); with
    ``flags`` also its unflagged channels (imaging/ms/chanflags.py)."""
    from casacore.tables import table

    from htclean.executables import msparts
    from htclean.imaging.fitscube import frame_to_specsys

    with msparts.unpacked(ms) as path:
        with table(str(path / "DATA_DESCRIPTION"), ack=False) as dd:
            spw_of = [int(s) for s in dd.getcol("SPECTRAL_WINDOW_ID")]
        ddids = [data["spw"]] if data["spw"] is not None else range(len(spw_of))
        windows = sorted({spw_of[d] for d in ddids if d < len(spw_of)})
        if len(windows) != 1:
            raise InputError(f"data.spw: {ms.name} has {len(windows)} spectral windows; a cube "
                             "or a channel selection images one: set data.spw")
        with table(str(path / "SPECTRAL_WINDOW"), ack=False) as sw:
            freq = np.asarray(sw.getcell("CHAN_FREQ", windows[0]), np.float64)
            frame = frame_to_specsys(sw.getcell("MEAS_FREQ_REF", windows[0]))
        unflagged = None
        if flags:
            from htclean.imaging.ms.chanflags import unflagged_channels

            rows = msparts.imaged_rows(path, data["field"], data["spw"])
            unflagged = unflagged_channels(path, windows[0], rows)
    return Window(freq, frame, unflagged)


def spectral_window(paths: list[Path], settings: dict) -> Window:
    """The window every MS of the run shares (a cube's: with the channels unflagged in any
    MS); InputError when their channels differ."""
    cube = settings["image"]["mode"] == "cube"
    windows = [_window(Path(p), settings["data"], cube) for p in paths]
    first = windows[0]
    step = float(np.min(np.abs(np.diff(first.freq)))) if first.freq.size > 1 else 1.0
    for p, w in zip(paths[1:], windows[1:], strict=True):
        same = w.freq.shape == first.freq.shape and \
            float(np.max(np.abs(w.freq - first.freq))) <= SAME_FREQUENCY * step
        if not same:
            raise InputError(f"data.ms: the channels of {Path(p).name} ({w.freq.size} from "
                             f"{w.freq[0]:.6g} Hz) differ from those of {Path(paths[0]).name} "
                             f"({first.freq.size} from {first.freq[0]:.6g} Hz); a cube needs "
                             "MSs whose channels coincide")
        if w.specsys != first.specsys:
            raise InputError(f"data.ms: {Path(p).name}'s frequencies are {w.specsys}, "
                             f"{Path(paths[0]).name}'s {first.specsys}")
    if cube:
        unflagged = np.logical_or.reduce([w.unflagged for w in windows])
        first = replace(first, unflagged=unflagged)
    return first


def resolve_channels(resolved: dict, settings: dict, window: Window) -> None:
    """Check the selection against the window and write ``image.nchan`` (null: to the end)
    into ``resolved``; InputError naming the key when start, nchan, width or the line-free
    channels do not fit."""
    from htclean.imaging.spectral.channels import parse_channels

    image, total = settings["image"], window.freq.size
    start, nchan = image["start"], image["nchan"]
    if start >= total:
        raise InputError(f"image.start: channel {start} is past the window's last channel "
                         f"{total - 1} ({total} channels)")
    nchan = total - start if nchan is None else nchan
    if start + nchan > total:
        raise InputError(f"image.nchan: {nchan} channels from {start} go past the window's "
                         f"{total} channels")
    if image["mode"] == "cube" and nchan % image["width"]:
        raise InputError(f"image.width: {image['width']} channels per output channel does not "
                         f"divide the {nchan} channels imaged")
    linefree = settings["data"]["continuum"]["linefree"]
    if linefree is not None:
        parse_channels(linefree, total, spw=settings["data"]["spw"])
    resolved["image"]["nchan"] = nchan
    if window.unflagged is not None:
        width = image["width"]
        blank = [g for g, c in enumerate(range(start, start + nchan, width))
                 if not window.unflagged[c:c + width].any()]
        if len(blank) == nchan // width:
            raise InputError(f"image.start: every channel from {start} to "
                             f"{start + nchan - 1} is flagged: nothing to image")
        resolved["output"]["blank_channels"] = blank or None


def groups(settings: dict) -> list[tuple[int, int]]:
    """The MS channel range ``[c0, c1)`` of every output channel (one range in mfs mode)."""
    image = settings["image"]
    start, nchan = image["start"], image["nchan"]
    if nchan is None:
        raise InputError("image.nchan: is not set; is this a configuration written by "
                         "htclean plan?")
    width = image["width"] if image["mode"] == "cube" else nchan
    return [(c, c + width) for c in range(start, start + nchan, width)]


@dataclass(frozen=True)
class Axis:
    """A cube's frequency axis: each output channel's frequency (Hz: the middle of its MS
    channels, as its image is centred), the output channels' width (Hz) and SPECSYS."""
    frequencies: tuple[float, ...]
    width: float
    specsys: str


def axis(window: Window, settings: dict) -> Axis:
    """The frequency axis of the cube ``settings`` selects from ``window``."""
    ranges = groups(settings)
    freqs = tuple(float((window.freq[c0:c1].min() + window.freq[c0:c1].max()) / 2)
                  for c0, c1 in ranges)
    step = float(np.mean(np.diff(window.freq))) if window.freq.size > 1 else 0.0
    c0, c1 = ranges[0]
    return Axis(freqs, step * (c1 - c0) if step else 1.0, window.specsys)


def group_resolved(resolved: dict, g: int, channels: tuple[int, int]) -> dict:
    """The resolved configuration of output channel ``g``: an mfs run of ``channels``."""
    out = copy.deepcopy(resolved)
    image = out["image"]
    image.update(mode="mfs", start=channels[0], nchan=channels[1] - channels[0], width=1,
                 rest_frequency=None, name=f"{image['name']}-{g:04d}")
    out["restore"]["common_beam"] = False
    out["output"].update(group=g, previews=False, blank_channels=None)
    return out


def blank_channels(settings: dict) -> set[int]:
    """The output channels with no unflagged data (``output.blank_channels``, set by the
    plan): blank planes in the cube, no workflow of their own."""
    return set(settings["output"]["blank_channels"] or ())


def group_contexts(ctx: RunContext) -> list[RunContext]:
    """The RunContext of every output channel of the cube ``ctx`` that has data."""
    from htclean.workflows import config

    out = []
    blank = blank_channels(ctx.settings)
    for g, channels in enumerate(groups(ctx.settings)):
        if g in blank:
            continue
        resolved = group_resolved(ctx.resolved, g, channels)
        out.append(replace(ctx, resolved=resolved, settings=config.parse(resolved)))
    return out


def channel_products(name: str, g: int) -> list[str]:
    """What the cube job reads of output channel ``g``: its restore's FITS and summary."""
    return [f"{name}-{g:04d}-{kind}" for kind in names.PRODUCTS if not kind.endswith(".png")]


def selects_channels(settings: dict) -> bool:
    """Whether the run reads the MSs' channels at plan time: a cube, a channel selection or
    a continuum subtraction."""
    image = settings["image"]
    return image["mode"] == "cube" or image["start"] != 0 or image["nchan"] is not None \
        or settings["data"]["continuum"]["linefree"] is not None


def prepare(resolved: dict, settings: dict, paths: list[Path | None]) -> Axis | None:
    """``htclean plan``'s channel checks (InputError, nothing written): the MSs' window, the
    selection and the line-free channels; fills ``image.nchan`` into ``resolved``. Returns a
    cube's frequency axis (None in mfs mode)."""
    from htclean.workflows import config

    if not selects_channels(settings):
        return None
    if any(p is None for p in paths):
        raise InputError("image.mode: a cube, a channel selection or data.continuum needs "
                         "local MSs (htclean reads their channels at plan time)")
    window = spectral_window([Path(p) for p in paths if p is not None], settings)
    resolve_channels(resolved, settings, window)
    settings = config.parse(resolved)
    return axis(window, settings) if settings["image"]["mode"] == "cube" else None
