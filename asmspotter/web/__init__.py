"""The review web app (``asmspotter web``): map of sites, site pages, confirm / dismiss.

:mod:`asmspotter.web.app` builds the FastAPI application on one store,
:mod:`asmspotter.web.security` holds the token, CSRF and header rules, and
:mod:`asmspotter.web.imagery` renders the composite overlay and site chips. Templates
and static files (with the vendored Leaflet) ship as package data.
"""
