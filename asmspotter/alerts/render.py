"""Render site events into alert messages and a GeoJSON attachment; no network.

Tracking (``asmspotter.track``) produces :class:`~asmspotter.events.SiteEvent`s;
this module turns the alertable ones (``new`` and ``expanded``) into an
:class:`AlertMessage` with a plain-text, an HTML (email) and a Markdown (chat)
body, and writes the events as an EPSG:4326 GeoJSON file to attach.
Delivery over email, Slack or any apprise URL lives next door, in
``asmspotter.alerts.deliver``; the Prefect task ``tasks/alert.py`` wires the two
and records each delivery in the store, so nothing is sent twice.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from shapely.geometry.base import BaseGeometry

from asmspotter.alerts.facts import dismiss_command, format_dms, nearest_places
from asmspotter.alerts.i18n import gettext_ as _
from asmspotter.alerts.i18n import ngettext_, use_language
from asmspotter.context_layers import ContextTag
from asmspotter.events import ALERT_KINDS, SiteEvent
from asmspotter.exports import (
    format_context_tags,
    geojson_feature,
    lonlat_reprojector,
    write_geojson,
)

logger = logging.getLogger(__name__)

__all__ = [
    "AlertMessage",
    "describe_context",
    "event_key",
    "nearest_label",
    "osm_url",
    "render_alert",
    "render_digest",
    "render_notice_html",
    "site_page_url",
    "write_events_geojson",
]

PUBLIC_URL_ENV = "ASMSPOTTER_PUBLIC_URL"
"""Where the review web app is reachable by alert readers; set, alerts link each site's page."""

# 7 decimals of a degree is about 1 cm at the equator: RFC 7946 section 11.2
# recommends no more precision than the data has, and our pixels are metres.
_GEOJSON_DECIMALS = 7

# Zoom 15 shows roughly 1.5 km across on a laptop screen: a whole mining pit with
# its surroundings (https://wiki.openstreetmap.org/wiki/Zoom_levels).
_OSM_ZOOM = 15

_KIND_ORDER = {kind: i for i, kind in enumerate(ALERT_KINDS)}

# Characters that change meaning in Markdown (CommonMark and Slack mrkdwn).
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\`*_[]<>|#~"})


@dataclass(frozen=True)
class AlertMessage:
    """One alert, rendered for every kind of channel.

    Attributes:
        title: One-line summary; the email subject and the chat title.
        body_text: Plain-text body for channels without formatting.
        body_html: A complete HTML document with a table of sites (inline CSS), for email.
        body_markdown: Markdown body, one bullet per site, for chat channels.
        event_keys: :func:`event_key` of every alertable event the message covers,
            including those cut from the body by truncation (they are in the GeoJSON).
    """

    title: str
    body_text: str
    body_html: str
    body_markdown: str
    event_keys: tuple[str, ...]
    body_compact: str = ""
    """Short CommonMark block for chat (Slack): a few sites and a count of the rest, no title
    line (the channel shows the title; apprise converts the Markdown to Slack mrkdwn)."""


def event_key(event: SiteEvent, window_end: date) -> str:
    """Build the key that identifies one event of one run, for de-duplicating alerts.

    Args:
        event: The site event.
        window_end: Last day of the composite window the event was found in.

    Returns:
        ``"<site_id>:<kind>:<window_end ISO date>"``, e.g. ``"demo-0003:new:2024-01-30"``.
    """
    return f"{event.site_id}:{event.kind}:{window_end.isoformat()}"


def osm_url(lat: float, lon: float) -> str:
    """Build an OpenStreetMap link with a marker at a point.

    Args:
        lat: Latitude, decimal degrees (EPSG:4326).
        lon: Longitude, decimal degrees (EPSG:4326).

    Returns:
        The URL, coordinates at 5 decimals (about 1 m).
    """
    la, lo = f"{lat:.5f}", f"{lon:.5f}"
    return f"https://www.openstreetmap.org/?mlat={la}&mlon={lo}#map={_OSM_ZOOM}/{la}/{lo}"


def site_page_url(site_id: str, public_url: str | None = None) -> str | None:
    """Link to a site's page in the review web app (``asmspotter web``), if it is public.

    Args:
        site_id: Site id.
        public_url: The app's address; None reads ``ASMSPOTTER_PUBLIC_URL``.

    Returns:
        ``<public url>/sites/<site id>``, or None when no address is configured.
    """
    from urllib.parse import quote

    base = public_url if public_url is not None else os.environ.get(PUBLIC_URL_ENV)
    if not base:
        return None
    return f"{base.rstrip('/')}/sites/{quote(site_id, safe='')}"


@dataclass(frozen=True)
class _Row:
    """The formatted cells of one site, shared by the three bodies."""

    site_id: str
    event: str
    area: str
    lat: str
    lon: str
    url: str
    confidence: str
    first_seen: str
    clear_observations: str
    nearest: str
    page: str | None = None
    dms: str = ""
    river: str = ""
    imagery_before: str = ""
    imagery_after: str = ""
    dismiss: str = ""
    context: str = ""


CONFIDENCE_NOTE = (
    "Confidence: nominal = found by the segmentation model only; high = a verifier trained "
    "on real Sentinel-2 mines agrees (its score in brackets, 0-1); highest = the verifier is "
    "very sure, or the site was high in its previous composite too. The model card lists "
    "each level's expected sensitivity and specificity on real imagery."
)
"""Explains the confidence column under every site table."""


def describe_confidence(event: SiteEvent) -> str:
    """``high (verifier 0.93)``, or the level alone when the verifier did not score it."""
    if event.verifier_score is None:
        return _(event.confidence)
    return _("{level} (verifier {score})").format(
        level=_(event.confidence), score=f"{event.verifier_score:.2f}"
    )


def _layer_label(layer: str) -> str:
    """A context layer's name for readers: translated for the usual tags, else the tag itself."""
    known = {
        "protected_areas": _("protected area"),
        "indigenous_territories": _("indigenous territory"),
        "concessions": _("mining concession"),
        # The bundled real AOIs' Amazon Mining Watch layer (scripts/build_context_layers.py).
        "known_mining_2024": _("known mining area 2024"),
    }
    return known.get(layer, layer)


def describe_context(tags: Sequence[ContextTag]) -> str:
    """``protected area (Park A); concessions``: the layers a site lies in, for people."""
    return "; ".join(
        f"{_layer_label(tag.layer)} ({', '.join(tag.features)})"
        if tag.features
        else _layer_label(tag.layer)
        for tag in tags
    )


def _describe_event(event: SiteEvent) -> str:
    """Say what happened: ``new`` or ``expanded +2.1 ha (+15%)``."""
    if event.kind != "expanded":
        return _(event.kind)
    if event.growth_ha is None:
        return _("expanded (growth not measurable)")
    text = _("expanded {growth} ha").format(growth=f"{event.growth_ha:+.1f}")
    if event.growth_pct is not None:
        text += f" ({event.growth_pct:+.0f}%)"
    return text


def nearest_label(lat: float, lon: float, labels: Mapping[str, Sequence[float]] | None) -> str:
    """Describe a point by the nearest named place (not river) of the AOI.

    Args:
        lat: Latitude, decimal degrees.
        lon: Longitude, decimal degrees.
        labels: ``{name: [lon, lat]}`` from the AOI's ``labels``; empty or None gives "".

    Returns:
        e.g. ``"2.3 km NE (bearing 47°) of Albina"``: geodesic distance and direction
        from the place to the point, or ``""`` when the AOI names no place.
    """
    place, _ = nearest_places(lat, lon, labels)
    return _describe_fix(place)


def _describe_fix(fix: Any) -> str:
    """``2.3 km NE (bearing 47°) of Albina``, ``at Albina``, or "" for no fix."""
    if fix is None:
        return ""
    if fix.is_at:
        return _("at {place}").format(place=fix.name)
    return _("{km} km {compass} (bearing {degrees}°) of {place}").format(
        km=f"{fix.distance_km:.1f}",
        compass=_(fix.compass),
        degrees=f"{fix.bearing_deg:.0f}",
        place=fix.name,
    )


def _row(
    event: SiteEvent,
    labels: Mapping[str, Sequence[float]] | None = None,
    resent_from: date | None = None,
    imagery: tuple[date | None, date] | None = None,
) -> _Row:
    """Format one alertable event (``resent_from``: window end of an earlier, undelivered one).

    ``imagery`` is (window end of the composite compared against, this composite's
    window end); a resent event shows only its own window end.
    """
    described = _describe_event(event)
    place, river = nearest_places(event.centroid_lat, event.centroid_lon, labels)
    before, after = imagery if imagery is not None else (None, None)
    if resent_from is not None:
        before, after = None, resent_from
    if resent_from is not None:
        described += " " + _("(window ending {date}, resent)").format(date=resent_from.isoformat())
    return _Row(
        site_id=event.site_id,
        event=described,
        area=f"{event.area_ha:.1f} ha",
        lat=f"{event.centroid_lat:.5f}",
        lon=f"{event.centroid_lon:.5f}",
        url=osm_url(event.centroid_lat, event.centroid_lon),
        confidence=describe_confidence(event),
        first_seen=event.first_seen.isoformat(),
        clear_observations=str(event.clear_observations),
        nearest=_describe_fix(place),
        page=site_page_url(event.site_id),
        dms=format_dms(event.centroid_lat, event.centroid_lon),
        river=_describe_fix(river),
        imagery_before=before.isoformat() if before else "",
        imagery_after=after.isoformat() if after else "",
        dismiss=dismiss_command(event.site_id),
        context=describe_context(event.context_tags),
    )


def _build_title(aoi_title: str, window: str, counts: Counter[str]) -> str:
    """Build the one-line summary used as subject and chat title."""
    n_new, n_expanded = counts["new"], counts["expanded"]
    parts = []
    if n_new:
        parts.append(_("{n} new").format(n=n_new))
    if n_expanded:
        parts.append(_("{n} expanding").format(n=n_expanded))
    if not parts:
        what = _("no new or expanding mining sites")
    else:
        noun = ngettext_("mining site", "mining sites", n_new + n_expanded)
        what = _("{counts} {noun}").format(counts=", ".join(parts), noun=noun)
    return _("asmspotter: {what} in {aoi} (window {window})").format(
        what=what, aoi=aoi_title, window=window
    )


def _other_counts_sentence(counts: Counter[str]) -> str | None:
    """Summarise the events that are not listed (unchanged, shrunk, not seen)."""
    labels = (
        ("unchanged", _("unchanged")),
        ("shrunk", _("shrunk")),
        ("not_seen", _("not seen (hidden by cloud)")),
    )
    parts = [f"{counts[kind]} {label}" for kind, label in labels if counts[kind]]
    if not parts:
        return None
    return _("Other tracked sites this window: {list}.").format(list=", ".join(parts))


def _md(text: str) -> str:
    """Escape a user-supplied string for Markdown."""
    return text.translate(_MD_SPECIAL)


def render_alert(
    aoi_name: str,
    aoi_title: str,
    window_start: date,
    window_end: date,
    events: Sequence[SiteEvent],
    *,
    max_sites: int = 25,
    files_note: str | None = None,
    labels: Mapping[str, Sequence[float]] | None = None,
    resent: Sequence[tuple[SiteEvent, date]] = (),
    image_names: Sequence[str] = (),
    compact_max_sites: int = 8,
    imagery_before: date | None = None,
    run_url: str | None = None,
    language: str = "en",
) -> AlertMessage:
    """Render the alert for one AOI and one window.

    Only ``new`` and ``expanded`` events are listed, new first, then largest first,
    one line (or table row) per site. Beyond ``max_sites`` the list is cut and the
    body says how many sites were left out and where they are (the GeoJSON), so
    nothing is dropped silently.

    Args:
        aoi_name: AOI slug (file stem of its YAML), e.g. ``ne-suriname``.
        aoi_title: Human-readable AOI name, e.g. ``Northeast Suriname``.
        window_start: First day of the composite window.
        window_end: Last day of the composite window.
        events: Every event of the run; non-alertable ones are only counted.
        max_sites: Most sites listed in the body; must be >= 0.
        files_note: Optional sentence about where the files are (outbox folder,
            object-store URL), appended to every body.
        labels: The AOI's named places ``{name: [lon, lat]}``; each site gets the
            nearest one with distance and direction.
        resent: Alertable events of earlier windows whose delivery to this channel
            failed, with their window end; listed after this window's sites and
            counted in the title.
        image_names: File names of attached images (quicklook, before/after); the
            HTML body shows them inline as ``cid:<name>`` inside an
            ``<!--images-->`` block that ``deliver`` drops where images cannot be inline.
        compact_max_sites: Most sites listed in ``body_compact`` (chat webhooks).
        imagery_before: Window end of the composite this one is compared with (the
            "before" imagery of every site); None when there was none.
        run_url: Public link to the run (Prefect UI), shown in every body; None hides it.
        language: ``en``, ``es``, ``pt`` or ``nl`` (the channel's ``language``); every
            sentence comes from that language's message catalogue.

    Returns:
        The rendered message; ``event_keys`` holds every alertable event, listed or not.

    Raises:
        ValueError: If ``max_sites`` is negative or the window ends before it starts.

    Example:
        >>> msg = render_alert("ne-suriname", "Northeast Suriname",
        ...                    date(2024, 1, 1), date(2024, 1, 30), [])
        >>> msg.title[:44]
        'asmspotter: no new or expanding mining sites'
        >>> msg.event_keys
        ()
    """
    if max_sites < 0:
        raise ValueError(f"render_alert: max_sites must be >= 0, got {max_sites}.")
    if window_end < window_start:
        raise ValueError(
            f"render_alert: window_end {window_end} is before window_start {window_start}; "
            "pass the window's first day, then its last."
        )

    with use_language(language):
        return _render_alert(
            aoi_name,
            aoi_title,
            window_start,
            window_end,
            events,
            max_sites=max_sites,
            files_note=files_note,
            labels=labels,
            resent=resent,
            image_names=image_names,
            compact_max_sites=compact_max_sites,
            imagery_before=imagery_before,
            run_url=run_url,
        )


def _render_alert(
    aoi_name: str,
    aoi_title: str,
    window_start: date,
    window_end: date,
    events: Sequence[SiteEvent],
    *,
    max_sites: int,
    files_note: str | None,
    labels: Mapping[str, Sequence[float]] | None,
    resent: Sequence[tuple[SiteEvent, date]],
    image_names: Sequence[str],
    compact_max_sites: int,
    imagery_before: date | None,
    run_url: str | None,
) -> AlertMessage:
    """:func:`render_alert` inside its language."""
    counts: Counter[str] = Counter(e.kind for e in events)
    alertable = sorted(
        (e for e in events if e.is_alertable),
        key=lambda e: (_KIND_ORDER[e.kind], -e.area_ha, e.site_id),
    )
    listed: list[tuple[SiteEvent, date | None]] = [(e, None) for e in alertable]
    listed += [(e, end) for e, end in resent if e.is_alertable]
    rows = [_row(e, labels, end, (imagery_before, window_end)) for e, end in listed]
    shown = rows[:max_sites]
    n_hidden = len(rows) - len(shown)
    window = f"{window_start.isoformat()} – {window_end.isoformat()}"
    title = _build_title(aoi_title, window, counts)
    n_resent = len(listed) - len(alertable)
    if n_resent:
        title += " " + ngettext_(
            "+ {n} earlier alert resent", "+ {n} earlier alerts resent", n_resent
        ).format(n=n_resent)

    intro = _("Area of interest: {title} ({name}); composite window {window}.").format(
        title=aoi_title, name=aoi_name, window=window
    )
    if not listed:
        intro += " " + _("No new or expanding mining sites were detected.")
    hidden_note = (
        ngettext_(
            "… and {n} more site, see the attached GeoJSON.",
            "… and {n} more sites, see the attached GeoJSON.",
            n_hidden,
        ).format(n=n_hidden)
        if n_hidden
        else None
    )
    others = _other_counts_sentence(counts)
    confidence_note = _(CONFIDENCE_NOTE)
    if run_url:
        files_note = f"{files_note} " if files_note else ""
        files_note += _("Run details: {url}").format(url=run_url)

    message = AlertMessage(
        title=title,
        body_text=_render_text(intro, shown, hidden_note, others, confidence_note, files_note),
        body_html=_render_html(
            title, intro, shown, hidden_note, others, confidence_note, files_note, image_names
        ),
        body_markdown=_render_markdown(
            intro, shown, hidden_note, others, confidence_note, files_note
        ),
        event_keys=tuple(event_key(e, end or window_end) for e, end in listed),
        body_compact=_render_compact(title, rows, compact_max_sites, files_note),
    )
    logger.info(
        "Rendered alert for AOI %s window %s: %d new, %d expanded, %d listed, %d cut",
        aoi_name,
        window,
        counts["new"],
        counts["expanded"],
        len(shown),
        n_hidden,
    )
    return message


def _text_site_block(r: _Row) -> list[str]:
    """Every fact of one site as indented plain-text lines, for a field team."""
    lines = [
        f"- {r.site_id}: "
        + _("{event}, area {area}, confidence {confidence}").format(
            event=r.event, area=r.area, confidence=r.confidence
        )
    ]
    if r.context:
        lines.append("  " + _("inside: {layers}").format(layers=r.context))
    lines.append("  " + _("location: {lat}, {lon} ({dms})").format(lat=r.lat, lon=r.lon, dms=r.dms))
    if r.imagery_after:
        before = r.imagery_before or _("none")
        lines.append(
            "  "
            + _("imagery: before {before}, after {after}").format(
                before=before, after=r.imagery_after
            )
        )
    lines.append(
        "  "
        + _("first seen {date}, {n} clear observations").format(
            date=r.first_seen, n=r.clear_observations
        )
    )
    if r.nearest:
        lines.append("  " + _("nearest place: {where}").format(where=r.nearest))
    if r.river:
        lines.append("  " + _("nearest river: {where}").format(where=r.river))
    lines.append("  " + _("map: {url}").format(url=r.url))
    if r.page:
        lines.append("  " + _("review: {url}").format(url=r.page))
    lines.append("  " + _("dismiss if false: {command}").format(command=r.dismiss))
    return lines


def _render_text(
    intro: str,
    rows: Sequence[_Row],
    hidden_note: str | None,
    others: str | None,
    confidence_note: str,
    files_note: str | None,
) -> str:
    """Plain text: one indented block per site with every fact."""
    lines = [intro, ""]
    for r in rows:
        lines.extend(_text_site_block(r))
    if hidden_note:
        lines.append(hidden_note)
    lines.append("")
    if rows:
        lines.append(confidence_note)
    if others:
        lines.append(others)
    if files_note:
        lines.append(files_note)
    return "\n".join(lines).rstrip() + "\n"


def _render_compact(
    title: str, rows: Sequence[_Row], max_sites: int, files_note: str | None
) -> str:
    """A short chat block in CommonMark: one line per site up to ``max_sites``, then a count.

    No title line: apprise sends the title itself, and Slack would show it twice.
    apprise turns the CommonMark into Slack's mrkdwn (``**b**`` -> ``*b*``,
    ``[t](u)`` -> ``<u|t>``); writing mrkdwn here would be converted a second time.
    """
    del title  # the channel shows it
    lines = []
    for r in rows[:max_sites]:
        near = f", {_md(r.nearest)}" if r.nearest else ""
        inside = ", " + _md(_("inside: {layers}").format(layers=r.context)) if r.context else ""
        site = f"[{_md(r.site_id)}]({r.page})" if r.page else _md(r.site_id)
        lines.append(
            f"- **{site}** {_md(r.event)}, {r.area}, {_md(r.confidence)}{inside}, "
            f"[{r.lat}, {r.lon}]({r.url}){near}; " + _("dismiss:") + f" `{r.dismiss}`"
        )
    if len(rows) > max_sites:
        n_more = len(rows) - max_sites
        more = ngettext_(
            "… and {n} more site; see the email or GeoJSON.",
            "… and {n} more sites; see the email or GeoJSON.",
            n_more,
        ).format(n=n_more)
        lines.append(f"- _{more}_")
    if files_note:
        lines.append(_md(files_note))
    return "\n".join(lines) + "\n"


def _render_markdown(
    intro: str,
    rows: Sequence[_Row],
    hidden_note: str | None,
    others: str | None,
    confidence_note: str,
    files_note: str | None,
) -> str:
    """Markdown: one bullet per site (chat clients render lists, rarely tables)."""
    lines = [_md(intro), ""]
    for r in rows:
        lines.append(
            f"- **{f'[{_md(r.site_id)}]({r.page})' if r.page else _md(r.site_id)}** "
            f"{_md(r.event)}, {r.area}, "
            + (_md(_("inside: {layers}").format(layers=r.context)) + ", " if r.context else "")
            + f"[{r.lat}, {r.lon}]({r.url}) ({_md(r.dms)}), "
            + _("confidence {confidence}").format(confidence=r.confidence)
            + ", "
            + _("first seen {date}, {n} clear observations").format(
                date=r.first_seen, n=r.clear_observations
            )
            + (
                ", "
                + _("imagery: before {before}, after {after}").format(
                    before=r.imagery_before or _("none"), after=r.imagery_after
                )
                if r.imagery_after
                else ""
            )
            + (f", {_md(r.nearest)}" if r.nearest else "")
            + (", " + _("nearest river: {where}").format(where=_md(r.river)) if r.river else "")
        )
        lines.append("  " + _("dismiss:") + f" `{r.dismiss}`")
    if hidden_note:
        lines.append(f"- _{_md(hidden_note)}_")
    lines.append("")
    if rows:
        lines.append(_md(confidence_note))
    if others:
        lines.append(_md(others))
    if files_note:
        lines.append(_md(files_note))
    return "\n".join(lines).rstrip() + "\n"


IMAGES_START = "<!--images-->"
"""Start of the inline-image block of ``body_html`` (dropped where images cannot be inline)."""
IMAGES_END = "<!--/images-->"
"""End of the inline-image block of ``body_html``."""

_TABLE_STYLE = "border-collapse:collapse;font-family:Arial,Helvetica,sans-serif;font-size:14px;"
_TH_STYLE = (
    "border:1px solid #999;padding:4px 8px;background:#f0e6c8;text-align:left;white-space:nowrap;"
)
_TD_STYLE = "border:1px solid #999;padding:4px 8px;"
_TD_NUM_STYLE = _TD_STYLE + "text-align:right;white-space:nowrap;"
_P_STYLE = "font-family:Arial,Helvetica,sans-serif;font-size:14px;"
_STYLES = {
    "p": _P_STYLE,
    "table": _TABLE_STYLE,
    "th": _TH_STYLE,
    "td": _TD_STYLE,
    "td_num": _TD_NUM_STYLE,
}
"""Inline CSS of the e-mail templates (``s.td`` ...): mail clients drop ``<style>``."""


def _render_html(
    title: str,
    intro: str,
    rows: Sequence[_Row],
    hidden_note: str | None,
    others: str | None,
    confidence_note: str,
    files_note: str | None,
    image_names: Sequence[str] = (),
) -> str:
    """HTML document with a table of sites (``templates/alert.html.j2``, autoescaped)."""
    from markupsafe import Markup

    template = _template_environment().get_template("alert.html.j2")
    rendered: str = template.render(
        title=title,
        intro=intro,
        rows=rows,
        hidden_note=hidden_note,
        others=others,
        confidence_note=confidence_note,
        files_note=files_note,
        image_names=image_names,
        images_start=Markup(IMAGES_START),
        images_end=Markup(IMAGES_END),
        s=_STYLES,
    )
    return rendered.strip() + "\n"


@lru_cache(maxsize=1)
def _template_environment() -> Any:
    """The Jinja2 environment of the alert templates, its ``_`` the active catalogue."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("asmspotter.alerts", "templates"),
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        keep_trailing_newline=True,
    )
    env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda message: _(message),
        lambda singular, plural, n: ngettext_(singular, plural, n),
        newstyle=False,
    )
    return env


def _event_feature(event: SiteEvent, reproject: Callable[[BaseGeometry], BaseGeometry]) -> Any:
    """One GeoJSON feature of an event: every attribute a GIS user may filter on."""
    return geojson_feature(
        event.site_id,
        reproject(event.geometry),
        {
            "site_id": event.site_id,
            "event": event.kind,
            "area_ha": round(event.area_ha, 4),
            "growth_ha": None if event.growth_ha is None else round(event.growth_ha, 4),
            "growth_pct": None if event.growth_pct is None else round(event.growth_pct, 2),
            "mean_probability": (
                None if event.mean_probability is None else round(event.mean_probability, 4)
            ),
            "confidence": event.confidence,
            "verifier_score": (
                None if event.verifier_score is None else round(event.verifier_score, 4)
            ),
            "centroid_lon": round(event.centroid_lon, _GEOJSON_DECIMALS),
            "centroid_lat": round(event.centroid_lat, _GEOJSON_DECIMALS),
            "first_seen": event.first_seen.isoformat(),
            "clear_observations": event.clear_observations,
            "context_layers": format_context_tags(event.context_tags) or None,
        },
    )


def write_events_geojson(events: Sequence[SiteEvent], epsg: int, path: Path) -> Path:
    """Write events as a GeoJSON FeatureCollection in EPSG:4326, to attach to an alert.

    Geometries are reprojected from the AOI grid's CRS to lon/lat (RFC 7946, no
    ``crs`` member) and written by the project's one GeoJSON writer
    (:func:`asmspotter.exports.write_geojson`: atomic, normal file mode). Every
    given event is written; pass the alertable ones to match the message body.

    Args:
        events: The events to write; each geometry is in ``EPSG:<epsg>``.
        epsg: EPSG code of the geometries' CRS, e.g. 32621 (UTM zone 21N).
        path: Output file, conventionally ``*.geojson``; parents are created.

    Returns:
        ``path``.

    Raises:
        ValueError: If ``epsg`` is not a known EPSG code.
    """
    reproject = lonlat_reprojector(epsg)
    write_geojson([_event_feature(e, reproject) for e in events], path)
    logger.info("Wrote %d site events to %s (EPSG:4326)", len(events), path)
    return path


@dataclass(frozen=True)
class DigestSite:
    """One active site as the weekly digest lists it.

    Attributes:
        site_id: Persistent site id.
        area_ha: Latest mapped area, hectares.
        centroid_lat: Centroid latitude, decimal degrees.
        centroid_lon: Centroid longitude, decimal degrees.
        first_seen: Window end of the run that first detected it.
        last_seen: Window end of the latest run that detected it.
        context_tags: The AOI's context layers its outline intersects.
    """

    site_id: str
    area_ha: float
    centroid_lat: float
    centroid_lon: float
    first_seen: date
    last_seen: date
    context_tags: tuple[ContextTag, ...] = ()


def digest_key(aoi_name: str, window_end: date) -> str:
    """``<aoi>:digest:<ISO year>-W<ISO week>``: one digest per AOI and ISO week."""
    year, week, _weekday = window_end.isocalendar()
    return f"{aoi_name}:digest:{year}-W{week:02d}"


def iso_week_range(day: date) -> tuple[date, date]:
    """The Monday and Sunday of the ISO week that holds ``day``."""
    monday = day - timedelta(days=day.isoweekday() - 1)
    return monday, monday + timedelta(days=6)


@dataclass(frozen=True)
class _DigestRow:
    """The formatted cells of one digest site."""

    site_id: str
    area: str
    lat: str
    lon: str
    url: str
    first_seen: str
    seen: str
    context: str
    line: str


def _digest_row(site: DigestSite, window_end: date) -> _DigestRow:
    """Format one digest site (inside the active language)."""
    # An active site missing from the latest composite was hidden (cloud): a site
    # seen clear without mining would have shrunk or closed instead.
    if site.last_seen < window_end:
        seen = _("not seen since {date} (cloud)").format(date=site.last_seen.isoformat())
    else:
        seen = _("last seen {date}").format(date=site.last_seen.isoformat())
    lat, lon = f"{site.centroid_lat:.5f}", f"{site.centroid_lon:.5f}"
    url = osm_url(site.centroid_lat, site.centroid_lon)
    context = describe_context(site.context_tags)
    line = _("{site}: {area} ha at {lat}, {lon} (first seen {first}, {seen})").format(
        site=site.site_id,
        area=f"{site.area_ha:.1f}",
        lat=lat,
        lon=lon,
        first=site.first_seen.isoformat(),
        seen=seen,
    )
    if context:
        line += " " + _("inside: {layers}").format(layers=context)
    return _DigestRow(
        site.site_id,
        f"{site.area_ha:.1f}",
        lat,
        lon,
        url,
        site.first_seen.isoformat(),
        seen,
        context,
        f"{line} {url}",
    )


def render_digest(
    aoi_name: str,
    aoi_title: str,
    window_end: date,
    sites: Sequence[DigestSite],
    *,
    max_sites: int = 25,
    language: str = "en",
) -> AlertMessage:
    """The weekly digest: every active site of an AOI, largest first, and this week's news.

    "This week" is the ISO week (Monday to Sunday) that holds ``window_end``, the
    same week the label names (``2024-W09`` = 2024-02-26 to 2024-03-03); long lists
    are cut with a count of what was left out (all sites are in the attached GeoJSON).
    Sites not in the latest composite are listed as observation gaps (cloud).

    Args:
        aoi_name: AOI slug.
        aoi_title: AOI name for people.
        window_end: Last day of the run's window; picks the ISO week.
        sites: The AOI's active sites (a channel with ``tags``/``exclude_tags``: its sites).
        max_sites: Most sites listed; the rest are counted.
        language: ``en``, ``es``, ``pt`` or ``nl``, the channel's language.
    """
    with use_language(language):
        return _render_digest(aoi_name, aoi_title, window_end, sites, max_sites=max_sites)


def _render_digest(
    aoi_name: str, aoi_title: str, window_end: date, sites: Sequence[DigestSite], *, max_sites: int
) -> AlertMessage:
    """:func:`render_digest` inside its language."""
    week_start, week_end = iso_week_range(window_end)
    ordered = sorted(sites, key=lambda s: (-s.area_ha, s.site_id))
    n_new = sum(1 for s in ordered if week_start <= s.first_seen <= week_end)
    total_ha = f"{sum(s.area_ha for s in ordered):.1f}"
    key = digest_key(aoi_name, window_end)
    week = key.split(":")[-1]
    title = _("asmspotter weekly digest {week}: {sites} ({ha} ha) in {aoi}").format(
        week=week,
        sites=ngettext_("{n} active mining site", "{n} active mining sites", len(ordered)).format(
            n=len(ordered)
        ),
        ha=total_ha,
        aoi=aoi_title,
    )
    summary = _(
        "{first_seen} first seen in {week} ({start} – {end}); {active} in all, {ha} ha mapped."
    ).format(
        first_seen=ngettext_("{n} site", "{n} sites", n_new).format(n=n_new),
        week=week,
        start=week_start.isoformat(),
        end=week_end.isoformat(),
        active=ngettext_("{n} active site", "{n} active sites", len(ordered)).format(
            n=len(ordered)
        ),
        ha=total_ha,
    )
    gaps = sorted((s for s in ordered if s.last_seen < window_end), key=lambda s: s.last_seen)
    if gaps:
        summary += " " + _(
            "Observation gaps: {sites} not seen in the latest composite (cloud): {list}."
        ).format(
            sites=ngettext_("{n} site", "{n} sites", len(gaps)).format(n=len(gaps)),
            list=", ".join(
                _("{site} not seen since {date}").format(
                    site=s.site_id, date=s.last_seen.isoformat()
                )
                for s in gaps
            ),
        )
    rows = [_digest_row(s, window_end) for s in ordered[:max_sites]]
    cut = len(ordered) - len(rows)
    more = (
        ngettext_(
            "… and {n} more site, see the attached GeoJSON.",
            "… and {n} more sites, see the attached GeoJSON.",
            cut,
        ).format(n=cut)
        if cut
        else ""
    )
    text = "\n".join([summary, "", *(r.line for r in rows), *([more] if more else [])]) + "\n"
    markdown = "\n".join(
        [
            _md(summary),
            "",
            *(
                f"- **{_md(r.site_id)}**: {r.area} ha, [{r.lat}, {r.lon}]({r.url}), {_md(r.seen)}"
                + (", " + _md(_("inside: {layers}").format(layers=r.context)) if r.context else "")
                for r in rows
            ),
            *([_md(more)] if more else []),
        ]
    )
    compact = "\n".join([_md(summary), *(f"- {_md(r.line)}" for r in rows[:8])])
    n_not_compact = len(ordered) - min(8, len(rows))
    if n_not_compact:
        compact += "\n" + ngettext_(
            "… and {n} more site; see the email or GeoJSON.",
            "… and {n} more sites; see the email or GeoJSON.",
            n_not_compact,
        ).format(n=n_not_compact)
    body_html = (
        _template_environment()
        .get_template("digest.html.j2")
        .render(
            title=title,
            summary=summary,
            rows=rows,
            more=more,
            s=_STYLES,
        )
    )
    return AlertMessage(
        title=title,
        body_text=text,
        body_html=body_html.strip() + "\n",
        body_markdown=markdown,
        event_keys=(key,),
        body_compact=compact + "\n",
    )


def render_notice_html(title: str, paragraphs: Sequence[str]) -> str:
    """A short HTML e-mail (``templates/notice.html.j2``): a heading and paragraphs.

    For the messages that carry no site table: run failures and channel tests.
    """
    rendered: str = (
        _template_environment()
        .get_template("notice.html.j2")
        .render(title=title, paragraphs=[p for p in paragraphs if p], s=_STYLES)
    )
    return rendered.strip() + "\n"
