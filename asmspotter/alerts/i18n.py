"""Message catalogues of the alerts: gettext ``.po`` files, compiled when first used.

An alert channel names its language in the AOI file (``language: es``); the
renderers call :func:`gettext_` / :func:`ngettext_` and get the strings of the
language made active by :func:`use_language`. The catalogues are the ``.po`` files
under ``asmspotter/alerts/locale/<lang>/LC_MESSAGES/asmspotter.po``, shipped as
package data and compiled in memory with babel on first use, so a plain
``pip install -e .`` (no build step, no ``.mo`` files in git) is enough. English is
the source language: its strings are the message ids.
"""

from __future__ import annotations

import contextvars
import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from importlib import resources

__all__ = ["LANGUAGES", "gettext_", "ngettext_", "translations", "use_language"]

LANGUAGES = ("en", "es", "pt", "nl")
"""Languages alerts are written in: English, Spanish (Peru), Portuguese (Brazil),
Dutch (Suriname)."""

_DOMAIN = "asmspotter"
_ENGLISH = gettext.NullTranslations()
_active: contextvars.ContextVar[gettext.NullTranslations | None] = contextvars.ContextVar(
    "asmspotter_alert_translations", default=None
)


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of a language (English: the ids themselves).

    Raises:
        ValueError: The language is not one of :data:`LANGUAGES`.
    """
    if language not in LANGUAGES:
        raise ValueError(
            f"alert language {language!r} is not available; use one of {', '.join(LANGUAGES)}."
        )
    if language == "en":
        return _ENGLISH
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    po = resources.files("asmspotter.alerts").joinpath(
        f"locale/{language}/LC_MESSAGES/{_DOMAIN}.po"
    )
    with po.open("rb") as f:
        catalog = read_po(f, locale=language, domain=_DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


@contextmanager
def use_language(language: str) -> Iterator[None]:
    """Render in ``language`` inside the block (per thread / task, via a context variable)."""
    token = _active.set(translations(language))
    try:
        yield
    finally:
        _active.reset(token)


def gettext_(message: str) -> str:
    """``message`` in the active language."""
    return (_active.get() or _ENGLISH).gettext(message)


def ngettext_(singular: str, plural: str, n: int) -> str:
    """The singular or plural form for ``n``, in the active language."""
    return (_active.get() or _ENGLISH).ngettext(singular, plural, n)
