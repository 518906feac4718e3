"""The error classes of asmspotter.

One root, :class:`AsmspotterError`; each subclass also inherits the builtin that
fits, so callers that only know ``ValueError`` or ``OSError`` still catch it.
A message names the thing (file, AOI, scene id, URL), the field, what was found
and what was expected, and the fix.
"""


class AsmspotterError(Exception):
    """Root of every error asmspotter raises on purpose."""


class AOIConfigError(AsmspotterError, ValueError):
    """An AOI definition file is missing, unreadable or invalid."""


class SettingsError(AsmspotterError, ValueError):
    """A setting (environment variable or settings file) is invalid."""


class SceneReadError(AsmspotterError, OSError):
    """A scene file exists but cannot be read as the raster we expect."""


class ProviderNotConfiguredError(AsmspotterError):
    """A provider could not even try: a credential or option is missing."""


class ProviderAuthError(AsmspotterError):
    """A provider refused our credentials (HTTP 401/403). Never retried."""


class ProviderUnavailableError(AsmspotterError):
    """A provider is down or throttling (connection error, HTTP 429/5xx). Retried."""


class ProviderUnreachableError(ProviderUnavailableError):
    """A provider's host cannot be reached at all (name not resolved, connection refused).

    Not retried: waiting minutes does not bring back a network that is not there or
    fix a wrong host name; the run fails in seconds with the host named.
    """


class NoScenesError(AsmspotterError):
    """No usable scene was found for an AOI and window."""


class ModelMismatchError(AsmspotterError, ValueError):
    """A model's bands or pixel size do not fit the composite it is given."""


class ModelNotFoundError(AsmspotterError, FileNotFoundError):
    """A model directory or its weights/card are missing."""


class AlertDeliveryError(AsmspotterError):
    """An alert could not be delivered to a channel."""


class DatasetBuildError(AsmspotterError):
    """A training-chip build cannot go on (catalogue unreachable or refused, bad options)."""


class RunInProgressError(AsmspotterError, RuntimeError):
    """Another process is running the same AOI and window; this one did not start."""


class OutputWriteError(AsmspotterError, OSError):
    """An output file (composite, probability map) could not be written, e.g. disk full."""
