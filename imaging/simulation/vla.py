"""The VLA: antenna pads of the A, B, C and D configurations, the site, and baseline geometry.

Pad positions are ITRF (Earth-centred, Earth-fixed) metres, copied from CASA's simulator
configuration files ``data/alma/simmos/vla.{a,b,c,d}.cfg`` (casadata 2025.9.22, the files CASA's
``simobserve`` reads; the same numbers are in casaconfig and in the SIRIUS/astroviper test
templates). A pad shared by several configurations has the same position in every file.
The array reference position is CASA's "VLA" observatory.

Geometry follows Thompson, Moran & Swenson (3rd ed.) eq. 4.1: a baseline in the local equatorial
frame (X to hour angle 0 on the equator, Y to hour angle -6h (east), Z to the north celestial
pole) is rotated by the hour angle H and declination of the phase centre to (u, v, w).
The baseline of a row is ``position(ANTENNA1) - position(ANTENNA2)``: what CASA writes (casacore's
MSUVWGenerator stores antUVW[ant2] - antUVW[ant1] with antUVW[i] the projection of
ref - position[i]; CASA 6.7's imager.calcuvw on a simulated MS reproduces these UVW up to the
0.3 deg precession since J2000 that this geometry ignores). The MS v2 memo words it as ANTENNA2 -
ANTENNA1; the sign of the visibility exponent in DESIGN.md was measured with CASA's UVW.
"""

from __future__ import annotations

import math

import numpy as np

from htclean.imaging.errors import InputError

# CASA's "VLA" observatory position (ITRF metres); longitude -107.6183 deg, latitude 34.0788 deg.
SITE_ITRF = (-1601185.365, -5041977.547, 3554875.870)
SITE_LONGITUDE = math.atan2(SITE_ITRF[1], SITE_ITRF[0])  # rad, east positive
DISH_DIAMETER = 25.0  # m
TELESCOPE_NAME = "VLA"

# Pad name -> ITRF position (m), from CASA's vla.{a,b,c,d}.cfg.
PADS: dict[str, tuple[float, float, float]] = {
    "W01": (-1601188.989351, -5042000.518599, 3554843.384480),
    "W02": (-1601225.230987, -5041980.390730, 3554855.657987),
    "W03": (-1601265.110332, -5041982.563379, 3554834.816409),
    "W04": (-1601315.874282, -5041985.324465, 3554808.263784),
    "W05": (-1601376.950042, -5041988.682890, 3554776.344871),
    "W06": (-1601447.176774, -5041992.529191, 3554739.647266),
    "W07": (-1601526.335275, -5041996.876364, 3554698.284889),
    "W08": (-1601614.061201, -5042001.676547, 3554652.455603),
    "W09": (-1601709.987416, -5042006.942534, 3554602.306306),
    "W10": (-1601814.012979, -5042012.910834, 3554548.169769),
    "W12": (-1602044.867523, -5042025.834275, 3554427.791071),
    "W14": (-1602304.869788, -5042039.852981, 3554291.691252),
    "W16": (-1602592.823528, -5042055.013423, 3554140.652770),
    "W18": (-1602908.142805, -5042072.313211, 3553975.847815),
    "W20": (-1603249.635870, -5042091.416788, 3553797.759053),
    "W24": (-1604008.701913, -5042135.835806, 3553403.666765),
    "W28": (-1604865.614324, -5042190.031846, 3552962.315180),
    "W32": (-1605808.598184, -5042230.070459, 3552459.167358),
    "W36": (-1606841.923192, -5042279.677670, 3551912.963331),
    "W40": (-1607962.411673, -5042338.157771, 3551324.887280),
    "W48": (-1610451.987125, -5042471.380472, 3550021.011562),
    "W56": (-1613255.373440, -5042613.052534, 3548545.864364),
    "W64": (-1616361.554136, -5042770.440739, 3546911.386423),
    "W72": (-1619757.278011, -5042937.574555, 3545120.332832),
    "E01": (-1601192.424192, -5042022.883542, 3554810.383317),
    "E02": (-1601150.027460, -5042000.630731, 3554860.703495),
    "E03": (-1601114.318178, -5042023.187696, 3554844.922416),
    "E04": (-1601068.771188, -5042051.929370, 3554824.767363),
    "E05": (-1601014.405657, -5042086.261585, 3554800.768970),
    "E06": (-1600951.545716, -5042125.927280, 3554772.987195),
    "E07": (-1600880.545264, -5042170.376845, 3554741.425036),
    "E08": (-1600801.880602, -5042219.386677, 3554706.382285),
    "E09": (-1600715.918854, -5042273.142150, 3554668.128757),
    "E10": (-1600622.883685, -5042331.782984, 3554626.994222),
    "E12": (-1600416.766017, -5042462.382583, 3554536.019177),
    "E14": (-1600183.912095, -5042610.019072, 3554433.595054),
    "E16": (-1599926.059409, -5042772.992580, 3554319.742840),
    "E18": (-1599644.831108, -5042953.700344, 3554196.974795),
    "E20": (-1599340.771662, -5043150.994362, 3554065.185993),
    "E24": (-1598663.046405, -5043581.426755, 3553766.973356),
    "E28": (-1597899.874362, -5044068.731807, 3553432.398882),
    "E32": (-1597053.095558, -5044604.747750, 3553058.947311),
    "E36": (-1596127.706604, -5045193.798138, 3552652.368663),
    "E40": (-1595124.918941, -5045829.515575, 3552210.615356),
    "E48": (-1592894.065650, -5047229.198656, 3551221.180045),
    "E56": (-1590380.588363, -5048810.325262, 3550108.401088),
    "E64": (-1587600.201930, -5050575.976082, 3548885.379419),
    "E72": (-1584460.899441, -5052385.734791, 3547599.958930),
    "N01": (-1601185.553970, -5041978.191573, 3554876.382645),
    "N02": (-1601180.820941, -5041947.459898, 3554921.573373),
    "N03": (-1601177.368455, -5041925.069104, 3554954.532566),
    "N04": (-1601173.903632, -5041902.679083, 3554987.485762),
    "N05": (-1601168.735762, -5041869.062707, 3555036.885577),
    "N06": (-1601162.553007, -5041829.021602, 3555095.854771),
    "N07": (-1601155.593706, -5041783.860938, 3555162.327771),
    "N08": (-1601147.885235, -5041733.855114, 3555235.914849),
    "N09": (-1601139.483292, -5041679.021042, 3555316.478099),
    "N10": (-1601130.275576, -5041619.787569, 3555403.702740),
    "N12": (-1601109.979512, -5041488.118691, 3555597.386710),
    "N14": (-1601087.135163, -5041339.867787, 3555815.803566),
    "N16": (-1601061.915919, -5041175.907706, 3556057.981979),
    "N18": (-1601034.338231, -5040996.547770, 3556322.884666),
    "N20": (-1601004.618638, -5040802.826416, 3556610.115902),
    "N24": (-1600929.966850, -5040316.401791, 3557330.277550),
    "N28": (-1600863.571284, -5039885.323044, 3557965.280128),
    "N32": (-1600780.996259, -5039347.463556, 3558761.487153),
    "N36": (-1600690.842613, -5038758.669986, 3559632.015747),
    "N40": (-1600592.692550, -5038121.380641, 3560574.803338),
    "N48": (-1600374.808396, -5036704.253012, 3562667.855946),
    "N56": (-1600128.313994, -5035104.177252, 3565024.645048),
    "N64": (-1599855.570998, -5033332.403323, 3567636.578590),
    "N72": (-1599557.838366, -5031396.391942, 3570494.716758),
}

# Each configuration puts 9 antennas on each arm, at pads k*step (k = 1..9) from the centre.
_STEPS = {"A": 8, "B": 4, "C": 2, "D": 1}
CONFIGURATIONS: dict[str, tuple[str, ...]] = {
    name: tuple(f"{arm}{k * step:02d}" for arm in "WEN" for k in range(1, 10))
    for name, step in _STEPS.items()
}


def antennas(configuration: str) -> tuple[list[str], list[str], np.ndarray]:
    """The 27 antennas of a configuration ('A', 'B', 'C' or 'D').

    Returns (names ``ea01``..``ea27``, pad names, positions (27, 3) float64 ITRF metres).
    """
    key = str(configuration).upper()
    if key not in CONFIGURATIONS:
        raise InputError(f"unknown VLA configuration {configuration!r}; expected A, B, C or D")
    stations = list(CONFIGURATIONS[key])
    names = [f"ea{i + 1:02d}" for i in range(len(stations))]
    return names, stations, np.array([PADS[s] for s in stations], dtype=np.float64)


def baseline_pairs(nant: int) -> tuple[np.ndarray, np.ndarray]:
    """ANTENNA1, ANTENNA2 (int32) of every cross-correlation: (0,1), (0,2), ... (nant-2, nant-1)."""
    a1, a2 = np.triu_indices(nant, 1)
    return a1.astype(np.int32), a2.astype(np.int32)


def to_local(positions: np.ndarray, longitude: float = SITE_LONGITUDE) -> np.ndarray:
    """ITRF positions (n, 3) m rotated about the pole to the local equatorial frame at
    ``longitude`` (rad): X to the local meridian, Y east, Z the pole. Returns (n, 3) m."""
    c, s = math.cos(longitude), math.sin(longitude)
    x, y, z = positions[:, 0], positions[:, 1], positions[:, 2]
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=1)


def uvw(positions: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, hour_angle: np.ndarray,
        dec: float, longitude: float = SITE_LONGITUDE) -> np.ndarray:
    """(u, v, w) in metres of every baseline at every hour angle, time-major.

    positions: (nant, 3) ITRF m; ant1, ant2: (nbl,) indices; hour_angle: (ntime,) rad, the local
    hour angle of the phase centre at ``longitude``; dec: its declination (rad).
    Returns (ntime * nbl, 3) float64: row ``t * nbl + b`` is baseline b at time t, the
    projection of ``position(ant1[b]) - position(ant2[b])`` (CASA's sign, module docstring).
    """
    local = to_local(np.asarray(positions, dtype=np.float64), longitude)
    h = np.asarray(hour_angle, dtype=np.float64)[:, None]
    sh, ch = np.sin(h), np.cos(h)
    sd, cd = math.sin(dec), math.cos(dec)
    x, y, z = local[None, :, 0], local[None, :, 1], local[None, :, 2]
    ant = np.stack([sh * x + ch * y,
                    -sd * ch * x + sd * sh * y + cd * z,
                    cd * ch * x - cd * sh * y + sd * z], axis=2)  # (ntime, nant, 3)
    return (ant[:, ant1] - ant[:, ant2]).reshape(-1, 3)


def primary_beam_fwhm(freq: float, diameter: float = DISH_DIAMETER) -> float:
    """Primary-beam FWHM (rad) of a dish at ``freq`` (Hz): NRAO's 42 arcmin / nu[GHz] for the
    25 m VLA antennas, scaled by 25 m / ``diameter`` for other dishes."""
    if freq <= 0 or diameter <= 0:
        raise InputError(f"primary beam needs a positive frequency and dish diameter, got "
                         f"{freq!r} Hz and {diameter!r} m")
    return math.radians(42.0 / 60.0) * (1e9 / freq) * (DISH_DIAMETER / diameter)
