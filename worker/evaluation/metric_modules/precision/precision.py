"""Precision, averaged over classes as asked (macro, micro or weighted)."""

import datasets
import evaluate
from sklearn.metrics import precision_score

_DESCRIPTION = "Precision score from scikit-learn; labels outside `labels` count as misses."
_CITATION = ""
_KWARGS_DESCRIPTION = (
    "predictions: predicted label ids; references: true label ids; "
    "average: macro | micro | weighted; labels: the class ids to average over."
)


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Precision(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}
            ),
        )

    def _compute(self, predictions, references, average="macro", labels=None, sample_weight=None):
        value = precision_score(
            references,
            predictions,
            average=average,
            labels=labels,
            sample_weight=sample_weight,
            zero_division=0,
        )
        return {"precision": float(value)}
