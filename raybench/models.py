"""The report's network (four conv blocks and a linear head), run functionally.

Batch norm always uses the statistics of the batch it sees (``bn = "batch"``): no running
statistics, affine parameters meta-learned and adapted like every other weight. This is the
protocol of the MAML paper's code; it is transductive at test time (query statistics), which
is why it is recorded with every result.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from raybench.batching import native_batch_norm_enabled
from raybench.config import RunConfig

Params = dict[str, Tensor]


class BatchStatNorm2d(nn.Module):
    """Batch norm from the batch's own statistics, written in plain tensor ops.

    ``F.batch_norm``'s backward batching rule gives wrong second-order gradients under
    ``grad(vmap(grad(...)))`` (pytorch/functorch#534; here the MAML meta-gradient was 3.5%
    off and conv-bias gradients wildly so); these ops compose correctly with every
    transform and are checked against finite differences in the tests. Where no vmap is
    involved (a task loop, :mod:`raybench.batching`) the native kernel computes the same
    function faster, and is used.
    """

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, x: Tensor) -> Tensor:
        if native_batch_norm_enabled():
            return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)
        # Reducing the contiguous (H, W) dimensions first, then the batch, is several times
        # faster on a CPU than one reduction over (0, 2, 3), most of all under vmap (issue 30).
        mean = x.mean((2, 3), keepdim=True).mean(0, keepdim=True)
        centred = x - mean
        var = (centred * centred).mean((2, 3), keepdim=True).mean(0, keepdim=True)
        scale = self.weight.view(1, -1, 1, 1) * torch.rsqrt(var + self.eps)
        return torch.addcmul(self.bias.view(1, -1, 1, 1) - mean * scale, x, scale)


# The blocks' choices (``activation``, ``pooling`` in ``raybench.config``). ReLU and
# max-pooling are the report's; both make the support loss's gradient jump (a max switching
# between near-equal values, a unit crossing zero), and gradient descent on the implicit
# solvers' proximal problem then stalls far from stationary (measured: README, "Implicit
# solvers' assumptions"). GELU/SiLU and average pooling are smooth.
ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}
POOLING_LAYERS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def features_side(image_size: int) -> int:
    """The side of the feature map after four 2x2 poolings (each rounds down): 28 -> 1,
    32 -> 2, 84 -> 5."""
    side = image_size
    for _ in range(4):
        side //= 2
    return side


class Conv4(nn.Module):
    """Four conv blocks with ``hidden`` filters, each halving the side (28x28 -> 14 -> 7 ->
    3 -> 1 for Omniglot), then an N-way linear head over the flattened features."""

    def __init__(
        self,
        ways: int,
        hidden: int = 64,
        in_channels: int = 1,
        activation: str = "relu",
        pooling: str = "max",
        image_size: int = 28,
    ) -> None:
        super().__init__()
        blocks = []
        channels = in_channels
        for _ in range(4):
            blocks.append(
                nn.Sequential(
                    nn.Conv2d(channels, hidden, 3, padding=1),
                    BatchStatNorm2d(hidden),
                    ACTIVATION_LAYERS[activation](),
                    POOLING_LAYERS[pooling](2),
                )
            )
            channels = hidden
        self.features = nn.Sequential(*blocks)
        side = features_side(image_size)
        if side < 1:
            raise ValueError(f"images of {image_size}x{image_size} vanish in four 2x2 poolings")
        self.head = nn.Linear(hidden * side * side, ways)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).flatten(1))


class FunctionalModel:
    """A module used only through ``functional_call``: parameters live in plain dicts."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def __call__(self, params: Params, x: Tensor) -> Tensor:
        return functional_call(self.module, params, (x,))

    def init_params(self, seed: int, device: torch.device, dtype: torch.dtype) -> Params:
        """PyTorch's default initialisation, drawn from ``seed`` alone."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for layer in self.module.modules():
                if isinstance(layer, (nn.Conv2d, nn.Linear, BatchStatNorm2d)):
                    layer.reset_parameters()
            return {
                name: p.detach().to(device=device, dtype=dtype).clone()
                for name, p in self.module.named_parameters()
            }

    def loss(self, params: Params, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Mean cross-entropy of one task, with the logits for accuracies."""
        logits = self(params, x)
        return F.cross_entropy(logits, y), logits


def build_model(
    ways: int,
    hidden: int = 64,
    activation: str = "relu",
    pooling: str = "max",
    *,
    in_channels: int = 1,
    image_size: int = 28,
) -> FunctionalModel:
    """The conv4 network; its input (channels, side) follows the data set's images."""
    return FunctionalModel(
        Conv4(
            ways, hidden, in_channels=in_channels, activation=activation, pooling=pooling,
            image_size=image_size,
        )
    )  # fmt: skip


def model_for(config: RunConfig) -> FunctionalModel:
    """The network a run config describes."""
    return build_model(config.ways, config.hidden, config.activation, config.pooling)


def n_parameters(params: Params) -> int:
    return sum(p.numel() for p in params.values())
