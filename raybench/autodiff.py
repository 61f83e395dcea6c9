"""Gradients for the task loop: ``torch.autograd`` in place of ``torch.func``.

Under ``vmap`` the solvers differentiate with ``torch.func`` transforms, which compose
with batching. In the CPU task loop (:mod:`raybench.batching`) nothing is batched, and the
transforms only add work: every operation goes through a wrapper per transform level
(measured at the paper preset: a third of a MAML step). These functions have the same
contract as ``torch.func.grad`` / ``grad_and_value`` over parameter dicts, computed by plain
``torch.autograd.grad``:

- called on parameters that are part of a graph being recorded (the fast weights of an
  unrolled inner loop that an outer gradient will differentiate through), the gradient is
  built with ``create_graph`` so that the outer gradient sees it: second order, as
  ``torch.func.grad`` nested in ``torch.func.grad`` gives;
- otherwise (the outermost gradient, or under ``torch.no_grad``) the parameters are
  detached leaves and the result is plain tensors, no graph kept.

Both paths are checked against each other and, in float64, against finite differences.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.utils import _pytree as pytree

Params = dict[str, Tensor]


def _detach(tree: Any) -> Any:
    return pytree.tree_map(lambda t: t.detach() if isinstance(t, Tensor) else t, tree)


def grad_and_value(f: Callable[..., Any], has_aux: bool = False) -> Callable[..., Any]:
    """``torch.func.grad_and_value(f, has_aux)`` for ``f(params: dict, *args)`` by autograd:
    returns ``(grads, value)``, or ``(grads, (value, aux))`` with ``has_aux``."""

    def wrapped(params: Params, *args: Any) -> Any:
        nested = torch.is_grad_enabled() and any(p.requires_grad for p in params.values())
        with torch.enable_grad():
            leaves = (
                params if nested else {k: p.detach().requires_grad_() for k, p in params.items()}
            )
            out = f(leaves, *args)
            value, aux = out if has_aux else (out, None)
            grads = torch.autograd.grad(value, list(leaves.values()), create_graph=nested)
        named = dict(zip(leaves, grads))
        if not nested:
            value, aux = value.detach(), _detach(aux)
        return (named, (value, aux)) if has_aux else (named, value)

    return wrapped


def grad(f: Callable[..., Any], has_aux: bool = False) -> Callable[..., Any]:
    """``torch.func.grad(f, has_aux)`` by autograd: ``grads``, or ``(grads, aux)``."""
    both = grad_and_value(f, has_aux=has_aux)

    def wrapped(params: Params, *args: Any) -> Any:
        grads, out = both(params, *args)
        return (grads, out[1]) if has_aux else grads

    return wrapped


def hessian_vector_product(
    loss: Callable[..., tuple[Tensor, Tensor]], params: Params, *args: Tensor
) -> Callable[[Params], Params]:
    """``v -> H v`` for the Hessian of ``loss(params, *args)[0]`` at ``params``, by autograd:
    the gradient is built once with its graph, and each product is one backward pass
    through it (as :func:`raybench.linalg.hessian_vector_product` does with ``vjp``)."""
    with torch.enable_grad():
        leaves = {k: p.detach().requires_grad_() for k, p in params.items()}
        gradient = torch.autograd.grad(
            loss(leaves, *args)[0], list(leaves.values()), create_graph=True
        )

    def product(v: Params) -> Params:
        with torch.enable_grad():
            hv = torch.autograd.grad(
                gradient,
                list(leaves.values()),
                grad_outputs=[v[k] for k in leaves],
                retain_graph=True,
            )
        return {k: h.detach() for k, h in zip(leaves, hv)}

    return product
