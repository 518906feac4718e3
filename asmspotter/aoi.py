"""AOI definitions: the YAML schema, its validation, and the registry of AOI files.

A user registers an area of interest by dropping ``<name>.yaml`` into
``aoi_definitions/``. :func:`load_aoi` validates one file; :func:`load_registry`
loads every file and returns the valid AOIs *and* one error per bad file, so a
broken file never stops the others. Provider options are validated here too; the
providers themselves live in ``asmspotter.providers``.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from asmspotter.context_layers import (
    ContextLayer,
    ContextLayerConfig,
    LayerTag,
    load_context_layers,
)
from asmspotter.errors import AOIConfigError
from asmspotter.events import DEFAULT_ALERT_LEVELS, ConfidenceLevel
from asmspotter.sources import SourceConfig

logger = logging.getLogger(__name__)

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}$"
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
SECRET_REFERENCE = re.compile(r"\{\{\s*prefect\.blocks\.secret\.([A-Za-z0-9][A-Za-z0-9_-]*)\s*\}\}")
"""A Prefect Secret block reference in an alert URL: ``{{ prefect.blocks.secret.NAME }}``
(the syntax of Prefect's own templates); loaded only when the alert is sent."""
EventChoice = Literal["new", "expanded", "run_failed", "weekly_digest"]
"""Events an alert channel can subscribe to."""


def _check_slug(value: str) -> str:
    if not re.match(SLUG_PATTERN, value):
        raise ValueError(
            f"must be a slug of lowercase letters, digits and dashes (2-63 chars), got {value!r}"
        )
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, models are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ScheduleConfig(StrictModel):
    """When the AOI is monitored."""

    revisit_days: int = Field(default=5, ge=1, le=366, description="Days between runs.")
    window_days: int = Field(
        default=30, ge=1, le=366, description="Length of the composite window, days."
    )
    start_date: dt.date = Field(description="First date monitored (first window's start).")


class ExpansionConfig(StrictModel):
    """When a known site counts as expanded (both thresholds must be passed)."""

    min_growth_ha: float = Field(default=1.0, ge=0, description="Minimum growth, hectares.")
    min_growth_pct: float = Field(default=20.0, ge=0, description="Minimum growth, percent.")


class DetectionConfig(StrictModel):
    """Which model runs and how its output becomes sites."""

    model: str = Field(default="s2-unet-v1", description="Folder name under models/.")
    threshold: float | None = Field(
        default=None, gt=0, lt=1, description="Probability threshold; default: the model card's."
    )
    min_area_ha: float = Field(default=1.0, gt=0, description="Drop polygons smaller than this.")
    expansion: ExpansionConfig = Field(default_factory=ExpansionConfig)


class AlertChannelConfig(StrictModel):
    """One apprise URL and what it receives."""

    url: str = Field(
        description="Any apprise URL (mailto://, slack://, json://, ...). Put credentials in "
        "${ENV_VAR} references, never in plain text."
    )
    events: list[EventChoice] = Field(
        default_factory=lambda: list[EventChoice](["new", "expanded"]),
        description="Which events this channel receives.",
    )
    min_area_ha: float = Field(default=0.0, ge=0, description="Only sites at least this big.")
    levels: list[ConfidenceLevel] = Field(
        default_factory=lambda: list(DEFAULT_ALERT_LEVELS),
        min_length=1,
        description="Confidence levels this channel is alerted for (nominal, high, highest); "
        "default high and highest: sites the real-imagery verifier agrees with.",
    )

    language: Literal["en", "es", "pt", "nl"] = Field(
        default="en",
        description="Language of this channel's alerts: en, es, pt or nl.",
    )
    tags: list[LayerTag] | None = Field(
        default=None,
        min_length=1,
        description="Only sites in one of these context layers (names from the AOI's "
        "context_layers), e.g. [protected_areas] for the park service; default: every site.",
    )
    exclude_tags: list[LayerTag] | None = Field(
        default=None,
        min_length=1,
        description="Only sites in none of these context layers, e.g. [known_mining_2024] "
        "for new mining frontiers away from known districts; default: no site left out.",
    )

    @field_validator("url")
    @classmethod
    def _url_has_scheme(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError(
                f"must be an apprise URL like 'mailto://...' or 'slack://...', got {value!r}"
            )
        return value

    def resolved_url(self) -> str:
        """The URL with ``${ENV_VAR}`` and Prefect Secret references expanded.

        ``{{ prefect.blocks.secret.NAME }}`` loads the Secret block ``NAME`` from the
        Prefect API at this moment (prefect is imported only then), so the YAML and
        the process environment never hold the credential.

        Raises:
            AOIConfigError: a referenced variable is not set, or a Secret block
                cannot be loaded.
        """

        def load_secret(match: re.Match[str]) -> str:
            name = match.group(1)
            try:
                from prefect.blocks.system import Secret

                block: Any = Secret.load(name)  # sync in a sync context (async_dispatch)
                return str(block.get())
            except Exception as exc:
                raise AOIConfigError(
                    f"alert URL references the Prefect Secret block {name!r}, which could not "
                    f"be loaded ({type(exc).__name__}); create it with `prefect block create "
                    f"secret` or in the UI (Blocks > Secret) named {name!r}, and check "
                    "PREFECT_API_URL."
                ) from exc

        url = SECRET_REFERENCE.sub(load_secret, self.url) if "{{" in self.url else self.url

        def expand(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise AOIConfigError(
                    f"alert URL references ${{{name}}} but that environment variable is not set; "
                    f"export {name}=... before running."
                )
            return os.environ[name]

        return ENV_REFERENCE.sub(expand, url)


class AlertsPolicyConfig(StrictModel):
    """When an AOI's operators are told that monitoring itself is in trouble."""

    max_periods_without_data: int = Field(
        default=3,
        ge=1,
        description="Send a run_failed alert when the AOI has had no usable (clear) composite "
        "for more than this many revisit periods.",
    )
    max_sites_listed: int = Field(
        default=25, ge=1, description="Most sites listed in a message; the rest are counted."
    )
    retry_for_days: int = Field(
        default=60,
        ge=1,
        description="A failed alert is retried on later runs (any window) until delivered, "
        "or until its window ended more than this many days before the run's window.",
    )


class AOIConfig(StrictModel):
    """One AOI YAML file, validated."""

    name: Slug = Field(description="Slug; must equal the file stem.")
    title: str = Field(min_length=1, description="Human-readable name used in alerts.")
    enabled: bool = Field(
        default=True,
        description="Scheduled runs skip a disabled AOI; `asmspotter run` still runs it.",
    )
    geometry: dict[str, Any] | str = Field(
        description="Inline GeoJSON geometry (EPSG:4326) or a path to a GeoJSON file beside it."
    )
    sources: list[SourceConfig] = Field(min_length=1, description="Imagery sources, by priority.")
    schedule: ScheduleConfig
    detection: DetectionConfig = Field(default_factory=DetectionConfig)
    alerts: list[AlertChannelConfig] = Field(default_factory=list)
    alerts_policy: AlertsPolicyConfig = Field(
        default_factory=AlertsPolicyConfig,
        description="No-data alerts and message length (optional).",
    )
    labels: dict[str, list[float]] = Field(
        default_factory=dict,
        description="Optional named places {name: [lon, lat]} to describe sites in alerts.",
    )
    context_layers: list[ContextLayerConfig] = Field(
        default_factory=list,
        description="Protected areas, territories, concessions (GeoPackage/GeoJSON beside "
        "the file); sites are tagged with the layers they intersect.",
    )

    @field_validator("geometry")
    @classmethod
    def _inline_geometry_is_geojson(cls, geometry: dict[str, Any] | str) -> dict[str, Any] | str:
        if isinstance(geometry, dict):
            _geometry_from_mapping(geometry)
        return geometry

    @model_validator(mode="after")
    def _channel_tags_name_layers(self) -> AOIConfig:
        """A channel's ``tags`` and ``exclude_tags`` name context layers, each named once."""
        names = [layer.name for layer in self.context_layers]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f"context_layers: the names {repeated} are used twice; give each layer its "
                "own name (it is the tag its sites get)."
            )
        for index, channel in enumerate(self.alerts):
            for key, tags in (("tags", channel.tags), ("exclude_tags", channel.exclude_tags)):
                unknown = sorted(set(tags or ()) - set(names))
                if unknown:
                    raise ValueError(
                        f"alerts.{index}.{key}: {unknown} is not the name of a context layer "
                        f"(context_layers: {', '.join(names) or 'none'}); add the layer or fix "
                        "the tag."
                    )
            both = sorted(set(channel.tags or ()) & set(channel.exclude_tags or ()))
            if both:
                raise ValueError(
                    f"alerts.{index}: {both} is in both tags and exclude_tags; a site in the "
                    "layer cannot be both wanted and left out, so keep it in one of them."
                )
        return self


def _check_rings(geometry: dict[str, Any]) -> None:
    """Refuse what shapely would silently repair: empty polygons and unclosed rings.

    GeoJSON rings must end where they start (RFC 7946, 3.1.6); shapely closes them
    quietly, so a truncated coordinate list would pass as a different polygon.
    """
    kind = geometry.get("type")
    coordinates = geometry.get("coordinates")
    if kind not in ("Polygon", "MultiPolygon") or not isinstance(coordinates, list):
        return
    polygons = coordinates if kind == "MultiPolygon" else [coordinates]
    if not polygons or any(not polygon for polygon in polygons):
        raise ValueError(f"{kind} has no coordinates; give at least one closed ring")
    for polygon in polygons:
        for ring in polygon:
            if not isinstance(ring, list) or len(ring) < 4 or ring[0] != ring[-1]:
                first = ring[0] if isinstance(ring, list) and ring else None
                raise ValueError(
                    f"has a ring that is not closed (its first position {first} must be "
                    "repeated as its last, at least 4 positions)"
                )


def _geometry_from_mapping(mapping: dict[str, Any]) -> BaseGeometry:
    """Turn a GeoJSON geometry, Feature or FeatureCollection into one polygonal geometry."""
    kind = mapping.get("type")
    if kind == "FeatureCollection":
        from shapely.ops import unary_union

        for feature in mapping.get("features", []):
            _check_rings(feature.get("geometry") or {})
        parts = [shape(f["geometry"]) for f in mapping.get("features", [])]
        if not parts:
            raise ValueError("FeatureCollection has no features")
        geometry = unary_union(parts)
    elif kind == "Feature":
        _check_rings(mapping.get("geometry") or {})
        geometry = shape(mapping["geometry"])
    else:
        _check_rings(mapping)
        try:
            geometry = shape(mapping)
        except Exception as exc:  # shapely raises several types for bad GeoJSON
            raise ValueError(f"is not a GeoJSON geometry ({exc})") from exc
    if geometry.is_empty or geometry.geom_type not in ("Polygon", "MultiPolygon"):
        raise ValueError(f"must be a Polygon or MultiPolygon, got {geometry.geom_type}")
    if not geometry.is_valid:
        raise ValueError("is not a valid polygon (self-intersecting?)")
    minx, miny, maxx, maxy = geometry.bounds
    if minx < -180 or maxx > 180 or miny < -90 or maxy > 90:
        raise ValueError(
            f"coordinates must be lon/lat degrees (EPSG:4326), got bounds {geometry.bounds}"
        )
    return geometry


@dataclass(frozen=True)
class AOI:
    """A validated AOI, ready for the pipeline.

    Attributes:
        config: The validated YAML content.
        path: The YAML file it came from.
        geometry_lonlat: The AOI polygon in EPSG:4326.
        context_layers: The ``context_layers`` files, read (features touching the AOI).
    """

    config: AOIConfig
    path: Path
    geometry_lonlat: BaseGeometry
    context_layers: tuple[ContextLayer, ...] = ()

    @property
    def name(self) -> str:
        """The AOI slug (file stem)."""
        return self.config.name

    @property
    def title(self) -> str:
        """Human-readable title."""
        return self.config.title

    @property
    def area_km2(self) -> float:
        """Area of the AOI polygon in square kilometres (in its UTM zone)."""
        from asmspotter.grid import to_crs, utm_epsg_for_lonlat

        centroid = self.geometry_lonlat.centroid
        epsg = utm_epsg_for_lonlat(centroid.x, centroid.y)
        return float(to_crs(self.geometry_lonlat, epsg).area) / 1e6


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"]) or "(top level)"
        found = error.get("input")
        found_text = "" if isinstance(found, dict | list) else f" (found {found!r})"
        lines.append(f"{path}: {location}: {error['msg']}{found_text}")
    return "\n".join(lines)


def _resolve_geometry(config: AOIConfig, path: Path) -> BaseGeometry:
    if isinstance(config.geometry, dict):
        return _geometry_from_mapping(config.geometry)
    geometry_path = (path.parent / config.geometry).resolve()
    if not geometry_path.is_relative_to(path.parent.resolve()):
        raise AOIConfigError(
            f"{path}: geometry: path {config.geometry!r} points outside {path.parent}; "
            "put the GeoJSON file beside the YAML."
        )
    if not geometry_path.is_file():
        raise AOIConfigError(
            f"{path}: geometry: file {geometry_path} does not exist; give inline GeoJSON or the "
            "name of a GeoJSON file beside the YAML."
        )
    try:
        mapping = json.loads(geometry_path.read_text())
        return _geometry_from_mapping(mapping)
    except (json.JSONDecodeError, ValueError, KeyError) as exc:
        raise AOIConfigError(f"{path}: geometry: {geometry_path.name}: {exc}") from exc


def warn_plaintext_secrets(config: AOIConfig, path: Path) -> list[str]:
    """Return a warning per alert URL that seems to hold a credential in plain text.

    A password in ``user:password@`` or a long token not given as ``${ENV_VAR}`` is
    flagged: secrets belong in the environment or a Prefect Secret block, not in git.
    """
    found = []
    for index, channel in enumerate(config.alerts):
        without_refs = SECRET_REFERENCE.sub("", ENV_REFERENCE.sub("", channel.url))
        has_password = re.search(r"://[^/@\s]+:[^/@\s]+@", without_refs) is not None
        has_token = re.search(r"[A-Za-z0-9_\-]{24,}", without_refs) is not None
        if has_password or has_token:
            found.append(
                f"{path}: alerts.{index}.url looks like it holds a credential in plain text; "
                "use ${ENV_VAR} or {{ prefect.blocks.secret.NAME }} references instead."
            )
    return found


class _DatesAsTextLoader(yaml.SafeLoader):
    """YAML's safe loader that leaves dates as text, for pydantic to check.

    PyYAML turns ``2024-02-30`` into a date itself and raises a bare ValueError that
    names neither file nor field; as text it is validated like every other field.
    """


_DatesAsTextLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_aoi(path: Path) -> AOI:
    """Load and validate one AOI YAML file.

    Args:
        path: The ``<name>.yaml`` file.

    Returns:
        The validated AOI.

    Raises:
        AOIConfigError: naming the file, the field and what was expected.
    """
    try:
        text = path.read_text()
    except OSError as exc:
        raise AOIConfigError(f"{path}: cannot read the file ({exc.strerror}).") from exc
    try:
        raw = yaml.load(text, Loader=_DatesAsTextLoader)
    except yaml.YAMLError as exc:
        raise AOIConfigError(f"{path}: is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise AOIConfigError(
            f"{path}: expected a mapping with keys name, title, geometry, sources, schedule; "
            f"got {type(raw).__name__}."
        )
    try:
        config = AOIConfig.model_validate(raw)
    except ValidationError as exc:
        raise AOIConfigError(_format_validation_error(path, exc)) from exc
    if config.name != path.stem:
        raise AOIConfigError(
            f"{path}: name: must equal the file stem {path.stem!r}, got {config.name!r}; "
            "rename the file or the AOI."
        )
    geometry = _resolve_geometry(config, path)
    _check_area(geometry, path)
    for message in warn_plaintext_secrets(config, path):
        warnings.warn(message, UserWarning, stacklevel=2)
    layers = load_context_layers(config.context_layers, path, geometry)
    return AOI(config=config, path=path, geometry_lonlat=geometry, context_layers=layers)


def geodesic_area_km2(geometry_lonlat: BaseGeometry) -> float:
    """Area on the WGS84 ellipsoid, km²: right at any size, unlike one UTM zone's."""
    from pyproj import Geod

    area_m2, _ = Geod(ellps="WGS84").geometry_area_perimeter(geometry_lonlat)
    return abs(float(area_m2)) / 1e6


def _check_area(geometry_lonlat: BaseGeometry, path: Path) -> None:
    """Refuse an AOI larger than ``ASMSPOTTER_MAX_AOI_KM2`` before any run allocates it.

    Raises:
        AOIConfigError: naming the file, the area found, the limit and the fix.
    """
    from asmspotter.settings import get_settings

    limit_km2 = get_settings().max_aoi_km2
    area_km2 = geodesic_area_km2(geometry_lonlat)
    if area_km2 > limit_km2:
        raise AOIConfigError(
            f"{path}: geometry: covers {area_km2:,.0f} km², more than the limit of "
            f"{limit_km2:,.0f} km² (a run's memory and temporary disk grow with the area); "
            "split the region into several AOI files, or raise ASMSPOTTER_MAX_AOI_KM2 "
            "if this machine can hold it."
        )


@dataclass(frozen=True)
class Registry:
    """Every AOI file in a folder: the valid ones and one error per invalid one."""

    aois: dict[str, AOI]
    errors: dict[Path, AOIConfigError]


def list_aoi_files(aoi_dir: Path) -> list[Path]:
    """YAML files in ``aoi_dir``, sorted by name."""
    return sorted([*aoi_dir.glob("*.yaml"), *aoi_dir.glob("*.yml")])


def load_registry(aoi_dir: Path) -> Registry:
    """Load every AOI file in ``aoi_dir``; a bad file is recorded, never raised."""
    aois: dict[str, AOI] = {}
    errors: dict[Path, AOIConfigError] = {}
    for path in list_aoi_files(aoi_dir):
        try:
            aoi = load_aoi(path)
        except AOIConfigError as exc:
            logger.warning("Skipping invalid AOI file: %s", exc)
            errors[path] = exc
            continue
        aois[aoi.name] = aoi
    return Registry(aois=aois, errors=errors)


def find_aoi(aoi_dir: Path, name: str) -> AOI:
    """Load the AOI called ``name`` from ``aoi_dir``.

    Raises:
        AOIConfigError: no such file (listing the available AOIs) or the file is invalid.
    """
    for path in list_aoi_files(aoi_dir):
        if path.stem == name:
            return load_aoi(path)
    available = ", ".join(p.stem for p in list_aoi_files(aoi_dir)) or "none"
    raise AOIConfigError(
        f"No AOI named {name!r} in {aoi_dir} (available: {available}); add {name}.yaml there "
        "or set ASMSPOTTER_AOI_DIR."
    )
