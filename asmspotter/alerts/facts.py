"""The facts a field team needs about one site, computed once for every alert body.

An alert must stand on its own away from the server: coordinates a GPS takes
(decimal and degrees-minutes-seconds), the way from a named place (geodesic
distance and bearing on the WGS84 ellipsoid, ``pyproj.Geod``), the nearest river
when the AOI names one, the imagery dates compared, and the exact command that
dismisses a false positive. Nothing here does I/O.
"""

from __future__ import annotations

import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from pyproj import Geod

__all__ = [
    "PlaceFix",
    "dismiss_command",
    "format_dms",
    "is_public_url",
    "nearest_places",
    "prefect_run_url",
]

_GEOD = Geod(ellps="WGS84")
_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")

RIVER_WORDS = ("river", "rio ", "río", "rivier", "creek", "kreek", "igarapé", "igarape", "quebrada")
"""A label whose name holds one of these (case-insensitive) is a river, not a place."""

_AT_PLACE_M = 50.0  # closer than this a site is "at" the place


@dataclass(frozen=True)
class PlaceFix:
    """Where a site lies from a named point.

    Attributes:
        name: The label's name, as in the AOI file.
        distance_km: Geodesic distance from the place to the site, kilometres.
        bearing_deg: Initial bearing from the place to the site, degrees clockwise from
            true north (0-360): the direction to walk or fly from the place.
        compass: ``bearing_deg`` as one of eight compass points.
    """

    name: str
    distance_km: float
    bearing_deg: float
    compass: str

    @property
    def is_at(self) -> bool:
        """True when the site is within 50 m of the place."""
        return self.distance_km * 1000.0 < _AT_PLACE_M


def format_dms(lat: float, lon: float) -> str:
    """Degrees-minutes-seconds with hemisphere letters, e.g. ``5°07'12.3"N 54°54'36.0"W``.

    Seconds carry one decimal (about 3 m), as handheld GPS units show them.
    """

    def part(value: float, positive: str, negative: str) -> str:
        hemisphere = positive if value >= 0 else negative
        total_tenths = round(abs(value) * 36000)  # tenths of an arc second
        degrees, rest = divmod(total_tenths, 36000)
        minutes, tenths = divmod(rest, 600)
        return f"{degrees}°{minutes:02d}'{tenths / 10:04.1f}\"{hemisphere}"

    return f"{part(lat, 'N', 'S')} {part(lon, 'E', 'W')}"


def _is_river(name: str) -> bool:
    lowered = f"{name.lower()} "
    return any(word in lowered for word in RIVER_WORDS)


def _fix(name: str, place_lon: float, place_lat: float, lon: float, lat: float) -> PlaceFix:
    bearing, _, distance_m = _GEOD.inv(place_lon, place_lat, lon, lat)
    bearing %= 360.0
    return PlaceFix(name, distance_m / 1000.0, bearing, _COMPASS[round(bearing / 45) % 8])


def nearest_places(
    lat: float, lon: float, labels: Mapping[str, Sequence[float]] | None
) -> tuple[PlaceFix | None, PlaceFix | None]:
    """The nearest named place and the nearest river of an AOI's labels.

    Args:
        lat: Site latitude, decimal degrees.
        lon: Site longitude, decimal degrees.
        labels: ``{name: [lon, lat]}`` from the AOI file; names with a river word
            (:data:`RIVER_WORDS`) count as rivers.

    Returns:
        (nearest place, nearest river); either is None when the AOI names none.
    """
    place: PlaceFix | None = None
    river: PlaceFix | None = None
    for name, coords in (labels or {}).items():
        if len(coords) < 2:
            continue
        fix = _fix(name, float(coords[0]), float(coords[1]), lon, lat)
        if _is_river(name):
            if river is None or fix.distance_km < river.distance_km:
                river = fix
        elif place is None or fix.distance_km < place.distance_km:
            place = fix
    return place, river


def dismiss_command(site_id: str, reason: str = "false positive: <what it is>") -> str:
    """The exact CLI line that dismisses a site, quoted for a POSIX shell."""
    return f"asmspotter sites dismiss {shlex.quote(site_id)} --reason {shlex.quote(reason)}"


def is_public_url(url: str | None) -> bool:
    """True when a URL's host is reachable by others: not localhost, loopback or private."""
    if not url:
        return False
    try:
        host = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    if not host or host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host  # a single-label name ("prefect") resolves only inside a network
    return not (
        address.is_loopback or address.is_private or address.is_unspecified or address.is_link_local
    )


def prefect_run_url(ui_url: str | None, api_url: str | None, flow_run_id: str | None) -> str | None:
    """Link to a flow run in the Prefect UI, only when that UI is public.

    Args:
        ui_url: ``PREFECT_UI_URL`` (e.g. ``https://prefect.example.org``); if unset the
            UI is taken to sit beside the API (``PREFECT_API_URL`` without ``/api``).
        api_url: ``PREFECT_API_URL``.
        flow_run_id: The flow run's id; None outside a flow run.

    Returns:
        ``<ui>/runs/flow-run/<id>``, or None when there is no run or the UI is local
        (a ``localhost`` link in an e-mail only confuses its reader).
    """
    if not flow_run_id:
        return None
    base = ui_url
    if not base and api_url:
        base = api_url.rstrip("/")
        base = base[: -len("/api")] if base.endswith("/api") else base
    if not base or not is_public_url(base):
        return None
    return f"{base.rstrip('/')}/runs/flow-run/{flow_run_id}"
