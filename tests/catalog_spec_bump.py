"""A plugin that bumps the image-classification spec's version, as a release changing the
standardized evaluation would (``EVALBOARD_PLUGINS=tests.catalog_spec_bump``)."""

from __future__ import annotations

from dataclasses import replace

from evalboard import catalog

CURRENT = catalog.default_spec(catalog.IMAGE_CLASSIFICATION)
BUMPED = catalog.register_spec(replace(CURRENT, version=f"{CURRENT.version}.1"), replace=True)
