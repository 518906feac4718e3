"""Fakes of remote services and seeded test builders, imported by the tests as ``fakes.*``."""
