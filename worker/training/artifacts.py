"""The model card: a README.md whose YAML front matter carries a model-index entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evalboard.model_index import IndexedResult, front_matter


def write_model_card(
    model_dir: Path,
    *,
    run_name: str,
    base_model: str,
    dataset: str,
    dataset_config: str,
    split: str,
    metrics: dict[str, float],
    hyperparameters: dict[str, Any],
    epochs: list[dict[str, Any]],
) -> Path:
    """Write ``README.md`` for the trained model, with its test results in ``model-index``."""
    header = front_matter(
        run_name,
        [IndexedResult("image-classification", dataset, dataset_config, split, metrics)],
        library_name="transformers",
        pipeline_tag="image-classification",
        base_model=base_model,
        tags=["image-classification", "evalboard"],
        metrics=sorted(metrics),
    )
    lines = [
        "---",
        header,
        "---",
        "",
        f"# {run_name}",
        "",
        f"Fine-tuned from `{base_model}` on `{dataset}` by evalboard, then evaluated with the "
        f"standardized evaluation on split `{split}`.",
        "",
        "## Test results",
        "",
        "| metric | value |",
        "| --- | --- |",
        *(f"| {name} | {value:.4f} |" for name, value in sorted(metrics.items())),
        "",
        "## Hyperparameters",
        "",
        "| name | value |",
        "| --- | --- |",
        *(f"| {name} | {value} |" for name, value in hyperparameters.items()),
        "",
        "## Validation per epoch",
        "",
        "| epoch | loss | accuracy |",
        "| --- | --- | --- |",
        *(
            f"| {entry.get('epoch')} | {entry.get('eval_loss', float('nan')):.4f} | "
            f"{entry.get('eval_accuracy', float('nan')):.4f} |"
            for entry in epochs
        ),
        "",
    ]
    path = model_dir / "README.md"
    path.write_text("\n".join(lines))
    return path
