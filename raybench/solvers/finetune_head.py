"""Fine-tuning baseline: pre-trained features, only a new N-way head is fine-tuned."""

from raybench.solvers._finetune import Finetune
from raybench.solvers.base import register


@register
class FinetuneHead(Finetune):
    """Pre-train as a classifier over all training classes, then fit a fresh N-way head on
    each task's support set with the features frozen (the report's "Fine-tuning (Head
    Only)" row)."""

    name = "finetune-head"
    whole_network = False
