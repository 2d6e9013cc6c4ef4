"""The CASA half of benchmarks/compare_casa.py, run by a CASA Python (casatools + casatasks).

    CASA_PYTHON benchmarks/casa_side.py simulate SPEC.json
    CASA_PYTHON benchmarks/casa_side.py tclean ARGS.json

It imports nothing of htclean (the CASA environment does not have it). ``simulate`` writes a
Measurement Set with CASA's simulator tool (sm) and component lists (cl): a VLA configuration
from casadata's antenna files, the spectral windows, correlations, fields and scans of the
spec, noise (sm.setnoise simplenoise), then optionally WEIGHT_SPECTRUM (initweights), antenna
gains put into DATA and taken out by gencal + applycal into CORRECTED_DATA (calwt=True, so the
weights vary per baseline), and flagdata manual flags. ``tclean`` runs tclean once and writes
its psf, residual and (when cleaning) image and model as .npy arrays in FITS orientation
(image[y, x], x = RA increasing to the East on the left), with the restoring beam, the wall
time and the reference pixel in a JSON file.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import numpy as np


def _remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path)


def _components(path: str, comps: list[dict], ref_freq: float) -> None:
    from casatools import componentlist

    cl = componentlist()
    _remove(path)
    for c in comps:
        kw = {"dir": f"J2000 {c['ra_deg']!r}deg {c['dec_deg']!r}deg", "flux": c["flux"],
              "fluxunit": "Jy", "freq": f"{ref_freq!r}Hz", "shape": c["shape"]}
        if c["shape"] == "gaussian":
            kw.update(majoraxis=f"{c['major_asec']}arcsec", minoraxis=f"{c['minor_asec']}arcsec",
                      positionangle=f"{c['pa_deg']}deg")
        cl.addcomponent(**kw)
    cl.rename(path)
    cl.close()


def simulate(spec: dict) -> None:
    """Write the MS ``spec['ms']`` (see the module docstring); replaces one already there."""
    import casadata
    from casatasks import applycal, flagdata, gencal, initweights
    from casatasks.private.simutil import simutil
    from casatools import measures, simulator, table

    path = spec["ms"]
    _remove(path)
    me = measures()
    cfg = os.path.join(casadata.datapath, "alma", "simmos", f"vla.{spec['config']}.cfg")
    x, y, z, diam, pads, _, _, _ = simutil().readantenna(cfg)
    names = [f"ea{i + 1:02d}" for i in range(len(x))]
    spws = range(len(spec["spw_freqs"]))
    sm = simulator()
    sm.open(path)
    sm.setconfig(telescopename="VLA", x=x, y=y, z=z, dishdiameter=list(diam), mount=["alt-az"],
                 antname=names, padname=list(pads), coordsystem="global",
                 referencelocation=me.observatory("VLA"))
    for s, f0 in enumerate(spec["spw_freqs"]):
        sm.setspwindow(spwname=f"spw{s}", freq=f"{f0!r}Hz", deltafreq=f"{spec['dnu']!r}Hz",
                       freqresolution=f"{spec['dnu']!r}Hz", nchannels=spec["nchan"],
                       stokes=spec["stokes"])
    sm.setfeed(mode="perfect X Y" if "X" in spec["stokes"] else "perfect R L")
    for f in spec["fields"]:
        sm.setfield(sourcename=f["name"],
                    sourcedirection=me.direction("J2000", f"{f['ra_deg']!r}deg",
                                                 f"{f['dec_deg']!r}deg"))
    sm.setlimits(shadowlimit=0.001, elevationlimit="8deg")
    sm.setauto(autocorrwt=1.0 if spec.get("autocorrelations") else 0.0)
    sm.settimes(integrationtime=f"{spec['integration_s']}s", usehourangle=True,
                referencetime=me.epoch("utc", "2024/03/01/00:00:00"))
    for field, h0, h1 in spec["scans"]:
        for s in spws:
            sm.observe(sourcename=spec["fields"][field]["name"], spwname=f"spw{s}",
                       starttime=f"{h0 * 3600.0!r}s", stoptime=f"{h1 * 3600.0!r}s")
    sm.setvp(dovp=False)
    for k, f in enumerate(spec["fields"]):
        cl = f"{path}.field{k}.cl"
        _components(cl, f["components"], spec["ref_freq"])
        sm.setdata(spwid=list(spws), fieldid=[k])
        sm.predict(complist=cl, incremental=False)
        _remove(cl)
    sm.setdata(spwid=list(spws), fieldid=list(range(len(spec["fields"]))))
    sm.setseed(int(spec.get("seed", 11)))
    sm.setnoise(mode="simplenoise", simplenoise=f"{spec['noise_jy']!r}Jy")
    sm.corrupt()
    sm.close()
    if spec.get("weight_spectrum"):
        initweights(vis=path, wtmode="nyq", dowtsp=True)
    if spec.get("gains"):
        gains = np.asarray(spec["gains"], float)
        tb = table()
        tb.open(path, nomodify=False)
        a1, a2 = tb.getcol("ANTENNA1"), tb.getcol("ANTENNA2")
        tb.putcol("DATA", tb.getcol("DATA") * (gains[a1] * gains[a2])[None, None, :])
        tb.close()
        caltable = path + ".amp.G"
        _remove(caltable)
        gencal(vis=path, caltable=caltable, caltype="amp", antenna=",".join(names[:len(gains)]),
               parameter=list(gains))
        applycal(vis=path, gaintable=[caltable], calwt=True, flagbackup=False)
        _remove(caltable)
    for cmd in spec.get("flags", []):
        flagdata(vis=path, mode="manual", flagbackup=False, **cmd)
    _remove(path + ".flagversions")


def run_tclean(args: dict) -> None:
    """One tclean (mfs, Stokes I, hogbom, pblimit -1, no model saved); arrays and a JSON
    summary written under ``args['name']``."""
    from casatasks import tclean
    from casatools import image

    name = args["name"]
    for ext in ("image", "psf", "residual", "model", "pb", "sumwt", "mask", "weight",
                "image.pbcor"):
        _remove(f"{name}.{ext}")
    start = time.perf_counter()
    summary = tclean(vis=args["ms"], imagename=name, field=str(args["field"]),
           datacolumn=args["column"], imsize=args["size"], cell=f"{args['cell_asec']!r}arcsec",
           specmode="mfs", stokes="I", gridder=args["gridder"],
           wprojplanes=-1 if args["gridder"] == "wproject" else 1, pblimit=-1,
           weighting=args["weighting"], robust=float(args.get("robust", 0.0)),
           niter=int(args["niter"]), gain=float(args["gain"]),
           threshold=f"{args['threshold_jy']!r}Jy", deconvolver="hogbom", interactive=False,
           savemodel="none")
    out = {"wall_s": time.perf_counter() - start,
           "iterations": int((summary or {}).get("iterdone", 0)),
           "major_cycles": int((summary or {}).get("nmajordone", 0))}
    ia = image()
    kinds = ("psf", "residual", "image", "model") if args["niter"] > 0 else ("psf", "residual")
    for kind in kinds:
        ia.open(f"{name}.{kind}")
        np.save(f"{name}-{kind}.npy", ia.getchunk()[:, :, 0, 0].T.astype(np.float64))
        if kind == "psf":  # tclean stores the beam it fits to the PSF with it
            beam = ia.restoringbeam()
            out["beam_asec_deg"] = [_asec(beam["major"]), _asec(beam["minor"]),
                                    _deg(beam["positionangle"])]
            out["refpix"] = [float(v) for v in ia.coordsys().referencepixel()["numeric"][:2]]
        ia.close()
    for ext in kinds + ("pb", "sumwt", "mask", "weight"):
        _remove(f"{name}.{ext}")
    with open(f"{name}.json", "w") as fh:
        json.dump(out, fh)


def _asec(q: dict) -> float:
    factor = {"arcsec": 1.0, "arcmin": 60.0, "deg": 3600.0, "rad": 180 / np.pi * 3600}
    return float(q["value"]) * factor[q["unit"]]


def _deg(q: dict) -> float:
    return float(q["value"]) * {"deg": 1.0, "rad": 180 / np.pi}[q["unit"]]


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[0] not in ("simulate", "tclean"):
        raise SystemExit("usage: casa_side.py simulate|tclean ARGS.json")
    with open(argv[1]) as fh:
        args = json.load(fh)
    (simulate if argv[0] == "simulate" else run_tclean)(args)


if __name__ == "__main__":
    main(sys.argv[1:])
