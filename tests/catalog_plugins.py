"""Catalog registrations the tests use: each is a plugin module, as an operator would list in
``EVALBOARD_PLUGINS``; nothing in the service, db, queue or leaderboard code names them."""

from __future__ import annotations

from evalboard import catalog

# A lower-is-better metric and a spec that ranks by it.
MEAN_ERROR = catalog.register_metric(
    catalog.Metric("mean_error", False, "none", "test metric", "accuracy", "accuracy"),
    replace=True,
)
LOWER_IS_BETTER = catalog.register_spec(
    catalog.Spec(
        name="test-lower-is-better", version="1", task=catalog.IMAGE_CLASSIFICATION,
        metrics=("mean_error",), preprocessing="none", primary_metric="mean_error",
    ),
    replace=True,
)  # fmt: skip
