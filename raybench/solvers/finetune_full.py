"""Fine-tuning baseline: pre-trained network, a new head and every layer fine-tuned."""

from raybench.solvers._finetune import Finetune
from raybench.solvers.base import register


@register
class FinetuneFull(Finetune):
    """Pre-train as a classifier over all training classes, then fine-tune a fresh N-way
    head together with the whole network on each task's support set."""

    name = "finetune-full"
    whole_network = True
