"""Alerts in en, es, pt and nl, chosen per channel, through the real SMTP test server."""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
import yaml

from asmspotter.alerts.deliver import channel_from_url, send_alert
from asmspotter.alerts.i18n import LANGUAGES, translations
from asmspotter.alerts.render import render_alert
from asmspotter.aoi import load_aoi
from asmspotter.errors import AOIConfigError
from asmspotter.events import SiteEvent
from fakes.events import square_site
from fakes.smtp import serve_smtp

EXPECTED = {
    "en": ("1 new mining site", "nearest river", "To dismiss a false positive"),
    "es": ("1 nuevo(s) sitio minero", "río más cercano", "Para descartar un falso positivo"),
    "pt": ("1 novo(s) garimpo", "rio mais próximo", "Para descartar um falso positivo"),
    "nl": ("1 nieuw mijnbouwlocatie", "dichtstbijzijnde rivier", "Om een vals positief"),
}


def _event() -> SiteEvent:
    return square_site(
        "ne-0005",
        600_000,
        559_800,
        200,
        mean_probability=0.8,
        # The place labels the tests look up lie around this point, not the square.
        centroid_lon=-54.09,
        centroid_lat=5.06,
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_language_renders_and_arrives_by_email(language: str) -> None:
    title_part, river_label, dismiss_sentence = EXPECTED[language]
    message = render_alert(
        "ne",
        "Northeast",
        dt.date(2024, 2, 1),
        dt.date(2024, 2, 29),
        [_event()],
        labels={"Albina": [-54.10, 5.05], "Marowijne river": [-54.08, 5.07]},
        language=language,
    )
    assert title_part in message.title
    assert river_label in message.body_text and river_label in message.body_markdown
    assert dismiss_sentence in message.body_html
    assert "asmspotter sites dismiss ne-0005 --reason" in message.body_text
    if language != "en":
        assert "Area of interest" not in message.body_text, "no English left in the body"
        assert "confidence" not in message.body_text.lower().split("asmspotter sites")[0]
    with serve_smtp() as (port, inbox):
        channel = channel_from_url(f"mailto://127.0.0.1:{port}/f@example.org?from=a@example.org")
        assert send_alert(message, channel, []).ok
    (mail,) = inbox.messages
    assert mail["Subject"] == message.title
    assert len(inbox.received[0][1]) < 500_000
    plain = mail.get_body(("plain",)).get_content()
    assert river_label in plain


def test_every_catalogue_translates_every_message() -> None:
    """No msgid of the English source is missing or left empty in es, pt and nl."""
    from babel.messages.pofile import read_po

    root = Path(__file__).parents[2] / "asmspotter" / "alerts" / "locale"
    ids = None
    for language in ("es", "pt", "nl"):
        with open(root / language / "LC_MESSAGES" / "asmspotter.po", "rb") as f:
            catalog = read_po(f)
        these = {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}
        assert all(m.string for m in catalog if m.id), f"{language}: empty translations"
        ids = these if ids is None else ids
        assert these == ids, f"{language} differs from the other catalogues"
        assert translations(language).gettext("Site") != "Site"


def test_channel_language_comes_from_the_aoi_file(tmp_path: Path) -> None:
    text = textwrap.dedent("""\
        name: tc
        title: Test creek
        geometry: {type: Polygon, coordinates: [[[-54.1, 5.05], [-54.08, 5.05], [-54.08, 5.07], [-54.1, 5.05]]]}
        sources: [{provider: local, path: scenes}]
        schedule: {revisit_days: 5, window_days: 30, start_date: 2024-01-01}
        alerts:
          - url: "json://127.0.0.1:1/hook"
            language: pt
        """)
    (tmp_path / "tc.yaml").write_text(text)
    assert load_aoi(tmp_path / "tc.yaml").config.alerts[0].language == "pt"
    (tmp_path / "bad.yaml").write_text(text.replace("name: tc", "name: bad").replace("pt", "fr"))
    with pytest.raises(AOIConfigError, match="language"):
        load_aoi(tmp_path / "bad.yaml")


def test_files_note_is_in_the_channel_language(tmp_path: Path) -> None:
    from asmspotter.alerts.dispatch import _attached_note
    from asmspotter.alerts.i18n import use_language

    with use_language("nl"):
        note = _attached_note([tmp_path / "a.kml"], [tmp_path / "b.png", tmp_path / "c.png"])
    assert note == (
        "Bijlagen: a.kml. 2 extra afbeeldingen weggelaten om dit bericht onder 500 KB te "
        "houden: b.png, c.png."
    )


def test_every_string_in_the_code_and_templates_is_in_the_catalogues() -> None:
    """A new gettext_/_() string without a translation fails here, not in a field inbox."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.pofile import read_po

    root = Path(__file__).parents[2] / "asmspotter" / "alerts"
    found = {
        msgid if isinstance(msgid, str) else msgid[0]
        for _, _, msgid, _, _ in extract_from_dir(
            str(root),
            method_map=[("**.py", "python"), ("templates/**.j2", "jinja2")],
            keywords={"_": None, "gettext_": None, "ngettext_": (1, 2)},
        )
    }
    assert "Nearest place / river" in found and "Attached: {files}." in found
    for language in ("es", "pt", "nl"):
        with open(root / "locale" / language / "LC_MESSAGES" / "asmspotter.po", "rb") as f:
            ids = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(f) if m.id}
        assert found <= ids, f"{language} lacks {sorted(found - ids)}"


RING = [[-54.1, 5.05], [-54.08, 5.05], [-54.08, 5.07], [-54.1, 5.05]]
"""The test AOI's outline, lon/lat."""

NOTICES = {
    "en": ("test message for", "needs attention", "Reason: disk full", "weekly digest"),
    "es": ("mensaje de prueba para", "requiere atención", "Motivo: disk full", "resumen semanal"),
    "pt": ("mensagem de teste para", "precisa de atenção", "Motivo: disk full", "resumo semanal"),
    "nl": ("testbericht voor", "vraagt aandacht", "Reden: disk full", "weekoverzicht"),
}


def test_test_failure_and_digest_messages_arrive_in_each_channel_language(tmp_path: Path) -> None:
    from asmspotter.alerts.dispatch import send_failure_alert, send_test_alert
    from asmspotter.alerts.render import DigestSite, render_digest

    with serve_smtp() as (port, inbox):
        aoi_file = {
            "name": "tc",
            "title": "Test creek",
            "geometry": {"type": "Polygon", "coordinates": [RING]},
            "sources": [{"provider": "local", "path": "scenes"}],
            "schedule": {"revisit_days": 5, "window_days": 30, "start_date": "2024-01-01"},
            "alerts": [
                {
                    "url": f"mailto://127.0.0.1:{port}/{lang}@example.org?from=a@example.org",
                    "events": ["run_failed"],
                    "language": lang,
                }
                for lang in LANGUAGES
            ],
        }
        (tmp_path / "tc.yaml").write_text(yaml.safe_dump(aoi_file))
        aoi = load_aoi(tmp_path / "tc.yaml")
        assert all(ok for _, ok, _ in send_test_alert(aoi, tmp_path / "outbox"))
        failed = send_failure_alert(
            aoi, "disk full", window_end=dt.date(2024, 2, 29), outbox_dir=tmp_path / "outbox"
        )
        assert [o.status for o in failed] == ["delivered"] * 4
    mails = {(m["To"].split("@")[0], i // 4): m for i, m in enumerate(inbox.messages)}
    gap = DigestSite("tc-0001", 4.0, 5.06, -54.09, dt.date(2024, 1, 31), dt.date(2024, 1, 31))
    for language in LANGUAGES:
        test_title, failure_title, reason, digest_title = NOTICES[language]
        assert test_title in mails[(language, 0)]["Subject"]
        failure = mails[(language, 1)]
        assert failure_title in failure["Subject"]
        assert reason in failure.get_body(("plain",)).get_content()
        assert reason in failure.get_body(("html",)).get_content()
        digest = render_digest("tc", "Test creek", dt.date(2024, 2, 29), [gap], language=language)
        assert digest.title.startswith(f"asmspotter {digest_title} 2024-W09")
        assert "2024-01-31" in digest.body_text and "tc-0001" in digest.body_html
        if language != "en":
            for english in ("first seen", "not seen since", "Observation gaps", "active site"):
                assert english not in digest.body_text, f"{language}: {english!r} left in English"
            assert "This is a test" not in mails[(language, 0)].get_body(("plain",)).get_content()
            assert "Sites are not being updated" not in failure.get_body(("plain",)).get_content()
