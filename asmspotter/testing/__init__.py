"""Seeded builders of test fixtures (scenes, AOIs) made by code, never downloaded."""
