"""Fine-tune an image classifier with transformers' Trainer; best checkpoint kept."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evalboard.errors import BadInputError, NotFoundError, RefusedError
from evalboard.references import ResolvedDataset, ResolvedModel
from evalboard.settings import get_settings
from evalboard.training_params import TrainingParams
from worker.evaluation.adapter import safetensors_only
from worker.evaluation.image_classification import default_threads
from worker.evaluation.preprocess import plan_of
from worker.training.data import TrainingData, load_training_data
from worker.training.tensors import BatchTransform, materialize

BEST_METRIC = "accuracy"


@dataclass
class TrainingRequest:
    base_model: ResolvedModel
    dataset: ResolvedDataset
    params: TrainingParams
    output_dir: Path
    image_column: str = "image"
    label_column: str = "label"
    device: str | None = None


@dataclass
class TrainingOutcome:
    model_dir: Path
    best_checkpoint: str | None
    resumed_from: str | None
    stopped_early: bool
    cancelled: bool
    class_names: list[str]
    history: list[dict[str, Any]] = field(default_factory=list)
    validation_note: str = ""

    def best_validation_metrics(self) -> dict[str, float]:
        """The validation metrics of the best epoch (the checkpoint that was kept)."""
        epochs = [entry for entry in self.history if f"eval_{BEST_METRIC}" in entry]
        if not epochs:
            return {}
        best = max(epochs, key=lambda entry: entry[f"eval_{BEST_METRIC}"])
        return {
            key.removeprefix("eval_"): float(value)
            for key, value in best.items()
            if key.startswith("eval_") and key.removeprefix("eval_") in ("accuracy", "f1_macro")
        }


def _precision_flags(params: TrainingParams, use_cuda: bool) -> dict[str, bool]:
    import torch

    if not use_cuda or params.mixed_precision == "no":
        return {"bf16": False, "fp16": False}
    if params.mixed_precision == "auto":
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    return {"bf16": params.mixed_precision == "bf16", "fp16": params.mixed_precision == "fp16"}


def load_base_model(base: ResolvedModel, class_names: list[str]) -> tuple[Any, Any]:
    """The base model with a head for these classes (a head of another size is replaced)."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification

    revision = base.resolved_revision if base.source == "hub" else None
    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    try:
        config = AutoConfig.from_pretrained(base.name, **kwargs)
        if getattr(config, "auto_map", None):
            raise RefusedError("base model config has 'auto_map': custom code is never run")
        model = AutoModelForImageClassification.from_pretrained(
            base.name,
            num_labels=len(class_names),
            id2label=dict(enumerate(class_names)),
            label2id={name: i for i, name in enumerate(class_names)},
            ignore_mismatched_sizes=True,
            use_safetensors=safetensors_only(),
            **kwargs,
        )
        processor = AutoImageProcessor.from_pretrained(base.name, **kwargs)
    except RefusedError:
        raise
    except OSError as error:
        raise NotFoundError(f"could not load base model {base.name!r}: {error}") from error
    except ValueError as error:
        raise BadInputError(f"base model {base.name!r} cannot be fine-tuned: {error}") from error
    return model, processor


def _compute_metrics(eval_prediction: Any) -> dict[str, float]:
    from evalboard import catalog
    from worker.evaluation.metrics import compute_metric

    logits = eval_prediction.predictions
    logits = logits[0] if isinstance(logits, tuple) else logits
    references = np.asarray(eval_prediction.label_ids)
    predictions = logits.argmax(axis=-1)
    return {
        name: compute_metric(
            catalog.metric(name), references=references, predictions=predictions, scores=logits
        )
        for name in ("accuracy", "f1_macro")
    }


def latest_checkpoint(checkpoints_dir: Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not checkpoints_dir.is_dir():
        return None
    return get_last_checkpoint(str(checkpoints_dir))


def run_training(
    request: TrainingRequest, callbacks: list[Any], *, model_dir: Path
) -> TrainingOutcome:
    """Train, keep the best checkpoint by validation accuracy, save it with its processor in
    ``model_dir``."""
    import torch
    from transformers import (
        EarlyStoppingCallback,
        PreTrainedModel,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.trainer_callback import PrinterCallback

    from worker.evaluation.engine import quiet_libraries

    quiet_libraries()
    params = request.params
    data: TrainingData = load_training_data(
        request.dataset,
        params,
        image_column=request.image_column,
        label_column=request.label_column,
    )
    set_seed(params.seed)
    model, processor = load_base_model(request.base_model, data.class_names)
    # Decoded and resized once; each step only indexes tensors and transforms the batch.
    settings = get_settings()
    threads = max(1, settings.eval_num_workers or default_threads())
    tensors = {
        role: materialize(
            split_rows, image_column=request.image_column, label_column=request.label_column,
            processor=processor, threads=threads, max_pixels=settings.max_image_pixels,
            split=role,
        )
        for role, split_rows in (("train", data.train), ("validation", data.validation))
    }  # fmt: skip
    collator = BatchTransform(plan_of(processor), augment=params.augment, seed=params.seed)

    use_cuda = torch.cuda.is_available() and (request.device or "cuda").startswith("cuda")
    checkpoints_dir = request.output_dir / "checkpoints"
    precision = _precision_flags(params, use_cuda)
    arguments = TrainingArguments(
        output_dir=str(checkpoints_dir),
        num_train_epochs=params.epochs,
        learning_rate=params.learning_rate,
        per_device_train_batch_size=params.batch_size,
        per_device_eval_batch_size=params.batch_size,
        gradient_accumulation_steps=params.gradient_accumulation,
        warmup_steps=params.warmup_ratio,  # a float in [0, 1) is a ratio in transformers 5
        weight_decay=params.weight_decay,
        seed=params.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=10,
        load_best_model_at_end=True,
        metric_for_best_model=BEST_METRIC,
        greater_is_better=True,
        save_total_limit=1,  # with load_best_model_at_end: the best and the last are kept
        auto_find_batch_size=params.auto_find_batch_size,
        use_cpu=not use_cuda,
        dataloader_num_workers=0,  # the data are tensors already: nothing left to parallelize
        remove_unused_columns=False,
        # One fused kernel per step for AdamW on a GPU (PyTorch's own).
        optim="adamw_torch_fused" if use_cuda else "adamw_torch",
        report_to="none",
        disable_tqdm=True,
        bf16=precision["bf16"],
        fp16=precision["fp16"],
    )
    all_callbacks = list(callbacks)
    if params.early_stopping_patience:
        all_callbacks.append(
            EarlyStoppingCallback(
                early_stopping_patience=params.early_stopping_patience,
                early_stopping_threshold=params.early_stopping_threshold,
            )
        )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=tensors["train"],
        eval_dataset=tensors["validation"],
        data_collator=collator,
        compute_metrics=_compute_metrics,
        callbacks=all_callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # progress goes to the database, not stdout
    resume_from = latest_checkpoint(checkpoints_dir)
    trainer.train(resume_from_checkpoint=resume_from)
    cancelled = any(getattr(callback, "cancelled", False) for callback in callbacks)

    # The best model (load_best_model_at_end), without Trainer's pickled training_args.bin.
    best_model = trainer.model
    assert isinstance(best_model, PreTrainedModel)
    best_model.save_pretrained(str(model_dir))
    processor.save_pretrained(str(model_dir))
    state = trainer.state
    planned = int(state.max_steps or 0)
    return TrainingOutcome(
        model_dir=model_dir,
        best_checkpoint=state.best_model_checkpoint,
        resumed_from=resume_from,
        stopped_early=not cancelled and state.global_step < planned,
        cancelled=cancelled,
        class_names=data.class_names,
        history=list(state.log_history),
        validation_note=data.validation_note,
    )


def write_training_params(path: Path, request: TrainingRequest, outcome: TrainingOutcome) -> None:
    """The resolved configuration and the per-epoch metrics, inside the model folder: only what
    the training fixed, so the folder's content (and its hash) never changes afterwards."""
    epochs = [entry for entry in outcome.history if "eval_loss" in entry]
    payload = {
        "base_model": request.base_model.name,
        "base_model_revision": request.base_model.resolved_revision,
        "dataset": request.dataset.name,
        "dataset_config": request.dataset.config,
        "dataset_fingerprint": request.dataset.fingerprint,
        "image_column": request.image_column,
        "label_column": request.label_column,
        "class_names": outcome.class_names,
        "validation": outcome.validation_note,
        "hyperparameters": request.params.model_dump(),
        "best_checkpoint": Path(outcome.best_checkpoint).name if outcome.best_checkpoint else None,
        "stopped_early": outcome.stopped_early,
        "epochs": epochs,
    }
    path.write_text(json.dumps(payload, indent=2, default=str))
