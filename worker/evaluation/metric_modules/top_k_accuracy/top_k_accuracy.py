"""Top-k accuracy: the true label is among the k highest-scored classes."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import top_k_accuracy_score

_DESCRIPTION = "Top-k accuracy from scikit-learn's top_k_accuracy_score."
_CITATION = ""
_KWARGS_DESCRIPTION = (
    "predictions: one list of class scores per sample; references: true label ids; k: how many."
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "predictions": datasets.Sequence(datasets.Value("float32")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, predictions, references, k=5):
        scores = np.asarray(predictions, dtype=np.float64)
        labels = np.arange(scores.shape[1])
        value = top_k_accuracy_score(references, scores, k=k, labels=labels)
        return {"top_k_accuracy": float(value)}
