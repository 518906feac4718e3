"""The review web app: a map of each AOI's sites, site pages, confirm / dismiss, downloads.

``asmspotter web`` serves :func:`create_app` with uvicorn (127.0.0.1 by default).
Pages are Jinja2 templates with autoescape on, so every stored string (reasons,
notes, titles) is escaped; the map is Leaflet, vendored under ``static/vendor``
(no CDN); scripts are files under ``static/`` only (the Content-Security-Policy
forbids inline ones). Writes go through :meth:`Store.review_site` and need the
write token (:mod:`asmspotter.web.security`); request parameters are only ever
database keys: the composites shown are the paths the store recorded, served only
when they lie under the outputs folder. Exports come from :mod:`asmspotter.exports`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

from asmspotter.context_layers import ContextTag, tag_sites
from asmspotter.errors import AsmspotterError
from asmspotter.exports import (
    EXPORT_FORMATS,
    ExportSite,
    format_context_tags,
    render_export,
    sites_from_records,
)
from asmspotter.storage import (
    AOIRecord,
    ObservationRecord,
    RecordNotFoundError,
    SiteRecord,
    Store,
)
from asmspotter.web import security
from asmspotter.web.imagery import (
    Overlay,
    chip_bounds,
    is_inside,
    render_overlay_png,
    render_site_chip_png,
)

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
"""Stylesheet, scripts and the vendored Leaflet (package data)."""

DISMISS_REASONS: dict[str, str] = {
    "river-bar": "river bar",
    "town": "town or village",
    "road": "road or airstrip",
    "cloud": "cloud or shadow",
    "other": "other",
}
"""Dismissal reasons offered (form value -> stored text): the usual look-alikes."""

CONFIRM_REASONS: dict[str, str] = {
    "imagery": "high-resolution imagery",
    "field": "field visit",
    "report": "local report",
    "other": "other",
}
"""Confirmation reasons offered (form value -> stored text): what settled it."""

REVIEW_FILTERS = ("all", "unreviewed", "confirmed", "dismissed")
"""Values of the ``review`` query parameter of the map and downloads."""

EVENT_LABELS: dict[str, str] = {
    "new": "new",
    "expanded": "expanded",
    "unchanged": "unchanged",
    "shrunk": "shrunk",
    "not_seen": "not seen (cloud)",
}
"""Event kinds as people read them."""

_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,119}$")
_MAX_FORM_BYTES = 16_384
_MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class WebConfig:
    """What the web app needs, resolved once at start.

    Attributes:
        database_url: The store's SQLAlchemy URL.
        outputs_dir: Run outputs; the only folder images are read from.
        training_dir: Where confirm / dismiss refresh positives.geojson and negatives.geojson.
        write_token: Token for writes; None = read-only.
        tile_url: Optional basemap tile URL template (``https://.../{z}/{x}/{y}.png``);
            None = no basemap (no request leaves the machine).
        aoi_dir: AOI YAML folder, for outlines and place labels (optional).
        max_token_failures: Wrong write tokens a client may send per
            ``token_failure_window_s`` before it gets 429 with ``Retry-After``.
        token_failure_window_s: That window, seconds.
    """

    database_url: str
    outputs_dir: Path
    training_dir: Path
    write_token: str | None = None
    tile_url: str | None = None
    aoi_dir: Path | None = None
    max_token_failures: int = 5
    token_failure_window_s: float = 300.0


def _check_key(value: str, what: str) -> str:
    """Refuse anything that is not an AOI slug or site id (before any lookup)."""
    if not _KEY.match(value):
        raise HTTPException(404, f"no {what} {value!r}")
    return value


def _templates() -> Environment:
    env = Environment(
        loader=PackageLoader("asmspotter.web", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["event_labels"] = EVENT_LABELS
    return env


@dataclass(frozen=True)
class TimelinePoint:
    """One run on a site's area chart (SVG user units)."""

    x: float
    y: float
    window_end: str
    kind: str
    area_ha: float


def build_timeline(
    history: Sequence[ObservationRecord], width: int = 640, height: int = 200
) -> dict[str, Any]:
    """Lay out a site's area per run as SVG points (x by date, y by area from 0).

    Returns:
        ``points`` (:class:`TimelinePoint` per observation), ``path`` (polyline points
        attribute), the axis ``ticks`` and the chart ``width``/``height``.
    """
    pad_l, pad_r, pad_t, pad_b = 48, 40, 12, 28
    if not history:
        return {"points": [], "path": "", "ticks": [], "width": width, "height": height}
    days = [(h.window_end - history[0].window_end).days for h in history]
    span = max(days[-1], 1)
    top = max(max(h.area_ha for h in history), 0.1) * 1.1
    points = [
        TimelinePoint(
            x=pad_l + (width - pad_l - pad_r) * (d / span if len(history) > 1 else 0.5),
            y=pad_t + (height - pad_t - pad_b) * (1 - h.area_ha / top),
            window_end=h.window_end.isoformat(),
            kind=h.kind,
            area_ha=h.area_ha,
        )
        for d, h in zip(days, history, strict=True)
    ]
    ticks = [
        {"y": pad_t + (height - pad_t - pad_b) * (1 - f), "label": f"{top * f:.1f}"}
        for f in (0.0, 0.5, 1.0)
    ]
    path = " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)
    return {"points": points, "path": path, "ticks": ticks, "width": width, "height": height}


def _filter_sites(
    sites: Sequence[SiteRecord],
    latest: dict[str, ObservationRecord],
    review: str,
    event: str,
) -> list[SiteRecord]:
    """The sites a map or download shows for the ``review`` and ``event`` filters."""
    if review not in REVIEW_FILTERS:
        raise HTTPException(400, f"review must be one of {', '.join(REVIEW_FILTERS)}")
    if event not in ("all", *EVENT_LABELS):
        raise HTTPException(400, f"event must be all or one of {', '.join(EVENT_LABELS)}")
    return [
        s
        for s in sites
        if (review == "all" or s.review_state == review)
        and (event == "all" or (s.site_id in latest and latest[s.site_id].kind == event))
    ]


def create_app(config: WebConfig) -> FastAPI:
    """Build the web app on one store.

    Args:
        config: Store URL, outputs folder, write token, optional basemap.

    Returns:
        The FastAPI application (serve it with uvicorn).
    """
    store = Store(config.database_url)
    templates = _templates()
    token_failures = security.TokenFailureLimiter(
        config.max_token_failures, config.token_failure_window_s
    )
    app = FastAPI(title="asmspotter review", docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    tile_origin = None
    if config.tile_url:
        from urllib.parse import urlsplit

        parts = urlsplit(config.tile_url.replace("{s}", "a"))
        tile_origin = f"{parts.scheme}://{parts.netloc}" if parts.netloc else None
    headers = security.security_headers(tile_origin)

    class _Headers(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            response = await call_next(request)
            for name, value in headers.items():
                response.headers.setdefault(name, value)
            return response

    app.add_middleware(_Headers)

    def page(
        request: Request, template: str, status_code: int = 200, **context: Any
    ) -> HTMLResponse:
        csrf = request.cookies.get(security.CSRF_COOKIE) or security.new_csrf_token()
        html = templates.get_template(template).render(
            writable=config.write_token is not None,
            csrf_token=csrf,
            **context,
        )
        response = HTMLResponse(html, status_code=status_code)
        if request.cookies.get(security.CSRF_COOKIE) != csrf:
            response.set_cookie(
                security.CSRF_COOKIE, csrf, httponly=True, samesite="strict", path="/"
            )
        return response

    def site_or_404(site_id: str) -> SiteRecord:
        try:
            return store.site(_check_key(site_id, "site"))
        except RecordNotFoundError as exc:
            raise HTTPException(404, f"no site {site_id!r}") from exc

    def aoi_or_404(aoi_name: str) -> AOIRecord:
        _check_key(aoi_name, "AOI")
        for record in store.aois():
            if record.name == aoi_name:
                return record
        raise HTTPException(404, f"no AOI {aoi_name!r}")

    def aoi_yaml(aoi_name: str) -> Any:
        """The AOI's validated YAML, or None if the folder or file is missing or bad."""
        if config.aoi_dir is None:
            return None
        from asmspotter.aoi import find_aoi

        try:
            return find_aoi(config.aoi_dir, aoi_name)
        except AsmspotterError as exc:
            logger.warning("AOI %s: no outline on the map: %s", aoi_name, exc)
            return None

    def context_tags(aoi: Any, sites: Sequence[Any]) -> dict[str, tuple[ContextTag, ...]]:
        """The context layers (protected areas, territories, ...) each site of ``aoi`` lies in.

        ``aoi`` is :func:`aoi_yaml`'s answer (None: no AOI file, no tags).
        """
        if aoi is None or not aoi.context_layers or not sites:
            return {}
        return tag_sites({s.site_id: s.geometry for s in sites}, sites[0].epsg, aoi.context_layers)

    def composite_for(path: str | None) -> Path | None:
        if path is None:
            return None
        candidate = Path(path)
        return candidate if is_inside(candidate, config.outputs_dir) else None

    @lru_cache(maxsize=8)
    def overlay_for(path: Path, mtime_ns: int) -> Overlay:
        return render_overlay_png(path)

    def latest_composite(aoi_name: str) -> Path | None:
        run = store.last_successful_run(aoi_name)
        return composite_for(run.composite_path) if run else None

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        match = re.fullmatch(r"/sites/([^/]+)/review", request.url.path)
        back = f"/sites/{match.group(1)}" if match and _KEY.match(match.group(1)) else None
        response = page(
            request,
            "error.html",
            status_code=exc.status_code,
            status=exc.status_code,
            detail=str(exc.detail),
            back=back,
        )
        response.headers.update(exc.headers or {})
        return response

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request) -> HTMLResponse:
        rows = []
        for record in store.aois():
            sites = store.sites(record.name)
            rows.append(
                {
                    "aoi": record,
                    "n_sites": len(sites),
                    "n_dismissed": sum(s.review_state == "dismissed" for s in sites),
                    "n_confirmed": sum(s.review_state == "confirmed" for s in sites),
                    "last_run": store.last_successful_run(record.name),
                }
            )
        return page(request, "index.html", rows=rows)

    @app.get("/aois/{aoi_name}", response_class=HTMLResponse)
    def aoi_page(
        request: Request, aoi_name: str, review: str = "all", event: str = "all"
    ) -> HTMLResponse:
        record = aoi_or_404(aoi_name)
        latest = store.latest_observations(aoi_name)
        sites = _filter_sites(store.sites(aoi_name), latest, review, event)
        query = urlencode({"review": review, "event": event})
        return page(
            request,
            "aoi.html",
            aoi=record,
            sites=sites,
            latest=latest,
            review=review,
            event=event,
            query=query,
            review_filters=REVIEW_FILTERS,
            formats=list(EXPORT_FORMATS),
            tile_url=config.tile_url or "",
        )

    @app.get("/api/aois/{aoi_name}/map.json")
    def map_data(aoi_name: str, review: str = "all", event: str = "all") -> JSONResponse:
        aoi_or_404(aoi_name)
        latest = store.latest_observations(aoi_name)
        sites = _filter_sites(store.sites(aoi_name), latest, review, event)
        aoi = aoi_yaml(aoi_name)
        rows = sites_from_records(
            sites, latest, url_for=lambda s: f"/sites/{s}", tags=context_tags(aoi, sites)
        )
        features = []
        for row in rows:
            from shapely.geometry import mapping

            features.append(
                {
                    "type": "Feature",
                    "id": row.site_id,
                    "properties": {**row.properties(), "colour": row.colour},
                    "geometry": mapping(row.geometry_lonlat),
                }
            )
        composite = latest_composite(aoi_name)
        overlay = None
        if composite is not None:
            rendered = overlay_for(composite, composite.stat().st_mtime_ns)
            overlay = {"url": f"/aois/{aoi_name}/composite.png", "bounds": rendered.bounds_latlon}
        run = store.last_successful_run(aoi_name)
        from shapely.geometry import mapping as to_geojson

        return JSONResponse(
            {
                "sites": {"type": "FeatureCollection", "features": features},
                "outline": to_geojson(aoi.geometry_lonlat) if aoi is not None else None,
                "labels": aoi.config.labels if aoi is not None else {},
                "overlay": overlay,
                "window_end": run.window_end.isoformat() if run else None,
            }
        )

    @app.get("/aois/{aoi_name}/composite.png")
    def composite_png(aoi_name: str) -> Response:
        aoi_or_404(aoi_name)
        composite = latest_composite(aoi_name)
        if composite is None:
            raise HTTPException(404, f"no composite for {aoi_name!r} under the outputs folder")
        rendered = overlay_for(composite, composite.stat().st_mtime_ns)
        return Response(rendered.png, media_type="image/png")

    @app.get("/aois/{aoi_name}/sites.{fmt}")
    def download(aoi_name: str, fmt: str, review: str = "all", event: str = "all") -> Response:
        aoi_or_404(aoi_name)
        if fmt not in EXPORT_FORMATS:
            raise HTTPException(404, f"no export format {fmt!r}; use {', '.join(EXPORT_FORMATS)}")
        latest = store.latest_observations(aoi_name)
        sites = _filter_sites(store.sites(aoi_name), latest, review, event)
        rows: list[ExportSite] = sites_from_records(
            sites, latest, tags=context_tags(aoi_yaml(aoi_name), sites)
        )
        content, media_type = render_export(rows, fmt)
        suffix = "" if review == "all" and event == "all" else f"-{review}-{event}"
        filename = f"{aoi_name}-sites{suffix}.{fmt}"
        return Response(
            content,
            media_type=media_type,
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )

    @app.get("/aois/{aoi_name}/training/{side}.geojson")
    def training(aoi_name: str, side: str) -> Response:
        aoi_or_404(aoi_name)
        import tempfile

        from asmspotter.report import write_negatives_geojson, write_positives_geojson

        with tempfile.TemporaryDirectory(prefix="asmspotter-web-") as tmp:
            path = Path(tmp) / f"{side}.geojson"
            if side == "negatives":
                write_negatives_geojson(store.dismissed_sites(aoi_name), path)
            elif side == "positives":
                write_positives_geojson(store.confirmed_sites(aoi_name), path)
            else:
                raise HTTPException(404, "training files are positives or negatives")
            content = path.read_bytes()
        return Response(
            content,
            media_type="application/geo+json",
            headers={"Content-Disposition": f'attachment; filename="{aoi_name}-{side}.geojson"'},
        )

    @app.get("/sites/{site_id}", response_class=HTMLResponse)
    def site_page(request: Request, site_id: str, reviewed: str | None = None) -> HTMLResponse:
        site = site_or_404(site_id)
        history = store.site_history(site.site_id)
        runs = {h.run_id: store.run(h.run_id) for h in history}
        pairs = []
        for i, h in enumerate(history):
            has_after = composite_for(runs[h.run_id].composite_path) is not None
            before = history[i - 1] if i > 0 else None
            has_before = (
                before is not None and composite_for(runs[before.run_id].composite_path) is not None
            )
            pairs.append(
                {"obs": h, "before": before if has_before else None, "has_after": has_after}
            )
        return page(
            request,
            "site.html",
            site=site,
            history=history,
            pairs=list(reversed(pairs)),
            timeline=build_timeline(history),
            context_layers=format_context_tags(
                context_tags(aoi_yaml(site.aoi_name), [site]).get(site.site_id, ())
            ),
            deliveries=store.site_deliveries(site.site_id),
            reviews=store.site_reviews(site.site_id),
            dismiss_reasons=DISMISS_REASONS,
            confirm_reasons=CONFIRM_REASONS,
            reviewed=reviewed in ("confirmed", "dismissed") and reviewed,
        )

    @app.get("/sites/{site_id}/runs/{run_id}.png")
    def site_chip(site_id: str, run_id: int) -> Response:
        site = site_or_404(site_id)
        history = store.site_history(site.site_id)
        observation = next((h for h in history if h.run_id == run_id), None)
        if observation is None:
            raise HTTPException(404, f"site {site_id!r} was not observed in run {run_id}")
        composite = composite_for(store.run(run_id).composite_path)
        if composite is None:
            raise HTTPException(404, f"run {run_id} has no composite under the outputs folder")
        from shapely import wkt

        outlines = [wkt.loads(h.geometry_wkt) for h in history]
        from asmspotter.exports import EVENT_COLOURS

        png = render_site_chip_png(
            composite,
            wkt.loads(observation.geometry_wkt),
            chip_bounds(outlines),
            colour=EVENT_COLOURS.get(observation.kind, "#ffffff"),
        )
        return Response(png, media_type="image/png", headers={"Cache-Control": "max-age=300"})

    @app.post("/sites/{site_id}/review")
    async def review(request: Request, site_id: str) -> Response:
        site = site_or_404(site_id)
        body = await request.body()
        if len(body) > _MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        if not security.is_same_origin(request.headers.get("origin"), request.headers.get("host")):
            raise HTTPException(403, "refused: the form came from another site")
        if not security.is_csrf_valid(
            request.cookies.get(security.CSRF_COOKIE), form.get(security.CSRF_FIELD)
        ):
            raise HTTPException(
                403, "refused: the form's CSRF token is missing or stale; reload the page"
            )
        if config.write_token is None:
            raise HTTPException(
                403, "refused: this server is read-only (no ASMSPOTTER_WEB_TOKEN configured)"
            )
        client = request.client.host if request.client else "unknown"
        wait_s = token_failures.retry_after_s(client)
        if wait_s is not None:
            raise HTTPException(
                429,
                f"refused: too many wrong tokens from {client}; try again in {wait_s} s",
                headers={"Retry-After": str(wait_s)},
            )
        if not security.is_token_valid(form.get(security.TOKEN_FIELD), config.write_token):
            token_failures.record_failure(client)
            logger.warning(
                "review of %s refused: wrong or missing token from %s", site.site_id, client
            )
            raise HTTPException(403, "refused: wrong or missing token; nothing was changed")
        decision = form.get("decision", "")
        choices = {"dismissed": DISMISS_REASONS, "confirmed": CONFIRM_REASONS}.get(decision)
        if choices is None:
            raise HTTPException(400, "decision must be confirmed or dismissed")
        reason = choices.get(form.get("reason", ""))
        if reason is None:
            raise HTTPException(400, f"reason must be one of {', '.join(choices)}")
        note = form.get("note", "")[:_MAX_NOTE_CHARS].strip() or None
        if reason == "other" and note is None:
            raise HTTPException(400, "reason 'other' needs a note saying what it is")
        store.review_site(site.site_id, decision, reason, note=note, source="web")
        from asmspotter.report import refresh_training_examples

        refresh_training_examples(store, config.training_dir)
        return RedirectResponse(f"/sites/{site.site_id}?reviewed={decision}", status_code=303)

    return app
