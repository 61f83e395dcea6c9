"""The linear solvers over parameter dicts, against dense float64 oracles: MINRES against a
dense solve and its Krylov least-squares definition, truncated CG against its documented
stopping rule, Lanczos against the dense spectrum; each also under vmap."""

from __future__ import annotations

import torch
from helpers import dense_truncated_cg
from torch.func import vmap

from raybench.linalg import lanczos, minres, tridiagonal_extremes, truncated_cg

F64 = torch.float64


def symmetric(eigenvalues: list[float], seed: int = 0) -> torch.Tensor:
    """Q diag(eigenvalues) Q^T with a random orthogonal Q."""
    g = torch.Generator().manual_seed(seed)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=F64)) @ q.T


def as_matvec(a: torch.Tensor):
    return lambda v: {"x": a @ v["x"]}


def krylov_basis(a: torch.Tensor, b: torch.Tensor, k: int) -> torch.Tensor:
    """An orthonormal basis (n, k) of span(b, Ab, ..., A^{k-1} b), Gram-Schmidt twice."""
    vectors = [b / b.norm()]
    for _ in range(k - 1):
        w = a @ vectors[-1]
        for _ in range(2):
            for v in vectors:
                w = w - (v @ w) * v
        vectors.append(w / w.norm())
    return torch.stack(vectors, 1)


INDEFINITE = [-3.0, -1.0, -0.5, 0.3, 0.7, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 9.0]


def test_minres_solves_an_indefinite_system() -> None:
    a = symmetric(INDEFINITE)
    b = torch.randn(12, generator=torch.Generator().manual_seed(1), dtype=F64)
    x, info = minres(as_matvec(a), {"x": b}, iterations=12)
    dense = torch.linalg.solve(a, b)
    assert ((x["x"] - dense).norm() / dense.norm()).item() < 1e-9
    assert info.iterations.item() == 12 and not info.negative_curvature.item()


def test_minres_iterate_is_the_krylov_least_squares_solution() -> None:
    """The definition: x_k minimises ||A x - b|| over span(b, ..., A^{k-1} b)."""
    a = symmetric(INDEFINITE, seed=2)
    b = torch.randn(12, generator=torch.Generator().manual_seed(3), dtype=F64)
    residuals = []
    for k in (1, 3, 6, 9):
        x, _ = minres(as_matvec(a), {"x": b}, iterations=k)
        v = krylov_basis(a, b, k)
        y = torch.linalg.lstsq(a @ v, b.unsqueeze(1)).solution.squeeze(1)
        assert ((x["x"] - v @ y).norm() / (v @ y).norm()).item() < 1e-8, k
        residuals.append((a @ x["x"] - b).norm().item())
    assert residuals == sorted(residuals, reverse=True)  # never grows


def test_minres_under_vmap_freezes_a_solved_system() -> None:
    """One system per task; one is solved in a single step (b an eigenvector: the Krylov
    space is exhausted) and must stay exact and finite for the remaining iterations."""
    mats = torch.stack([symmetric(INDEFINITE, seed=s) for s in range(3)])
    g = torch.Generator().manual_seed(4)
    rhs = torch.randn(3, 12, generator=g, dtype=F64)
    eigvals, eigvecs = torch.linalg.eigh(mats[2])
    rhs[2] = eigvecs[:, 0]

    def solve(a: torch.Tensor, b: torch.Tensor):
        x, info = minres(lambda v: {"x": a @ v["x"]}, {"x": b}, iterations=20)
        return x["x"], info.iterations

    xs, steps = vmap(solve)(mats, rhs)
    for i in range(3):
        dense = torch.linalg.solve(mats[i], rhs[i])
        assert torch.isfinite(xs[i]).all()
        assert ((xs[i] - dense).norm() / dense.norm()).item() < 1e-9
    assert steps[2].item() == 1 and 12 <= steps[0].item() < 20
    assert torch.allclose(xs[2], eigvecs[:, 0] / eigvals[0])


def test_truncated_cg_follows_its_stopping_rule_on_an_indefinite_system() -> None:
    """The documented rule: the iterate is the minimiser of x^T A x / 2 - b^T x over the
    largest Krylov space on which A is positive definite, m its dimension; CG has taken m
    steps and says it stopped at negative curvature."""
    # the negative eigenvalues carry little of b, so CG gets a few steps before it stops
    a = symmetric([-2.0, -0.2, 0.5, 1.0, 1.3, 2.0, 2.5, 3.0, 4.0, 5.0, 7.0, 8.0], seed=5)
    _, eigvecs = torch.linalg.eigh(a)
    weights = torch.ones(12, dtype=F64)
    weights[:2] = 0.05
    b = eigvecs @ weights
    x, info = truncated_cg(as_matvec(a), {"x": b}, iterations=30)
    m = int(info.iterations.item())
    assert info.negative_curvature.item() and 2 <= m < 12
    definite = [
        bool(torch.linalg.eigvalsh(v.T @ a @ v).min() > 0)
        for v in (krylov_basis(a, b, k) for k in range(1, 13))
    ]
    assert definite[:m] == [True] * m and not definite[m]  # the largest definite space
    v = krylov_basis(a, b, m)
    galerkin = v @ torch.linalg.solve(v.T @ a @ v, v.T @ b)
    assert ((x["x"] - galerkin).norm() / galerkin.norm()).item() < 1e-9
    ref, ref_steps, ref_stopped = dense_truncated_cg(a, b, 30)
    assert ref_stopped and ref_steps == m and torch.allclose(x["x"], ref, rtol=1e-10)


def test_truncated_cg_on_a_definite_system_is_plain_cg_and_never_stops() -> None:
    a = symmetric([0.5 + i for i in range(12)], seed=6)
    b = torch.randn(12, generator=torch.Generator().manual_seed(7), dtype=F64)
    x, info = truncated_cg(as_matvec(a), {"x": b}, iterations=40)
    assert not info.negative_curvature.item() and info.iterations.item() == 12
    dense = torch.linalg.solve(a, b)
    assert ((x["x"] - dense).norm() / dense.norm()).item() < 1e-10


def test_lanczos_extremes_are_the_spectrum_s_and_lie_inside_it() -> None:
    a = symmetric([-4.0, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0], seed=8)
    start = {"x": torch.randn(12, generator=torch.Generator().manual_seed(9), dtype=F64)}
    diagonal, off = lanczos(as_matvec(a), start, 12)
    low, high = tridiagonal_extremes(diagonal, off)
    assert abs(low.item() + 4.0) < 1e-9 and abs(high.item() - 34.0) < 1e-9
    for k in (2, 4, 6):
        low, high = tridiagonal_extremes(*lanczos(as_matvec(a), start, k))
        assert low.item() >= -4.0 and high.item() <= 34.0  # Ritz values: inside, from within
    # and they approach the ends as k grows
    gaps = [34.0 - tridiagonal_extremes(*lanczos(as_matvec(a), start, k))[1].item()
            for k in (2, 4, 8)]  # fmt: skip
    assert gaps == sorted(gaps, reverse=True)


def test_lanczos_after_the_krylov_space_is_exhausted_under_vmap() -> None:
    """Three distinct eigenvalues: the space is exhausted after 3 steps; the extra steps
    must neither invent eigenvalues nor produce NaN, in a vmapped batch."""
    base = torch.diag(torch.tensor([-2.0] * 4 + [1.0] * 4 + [5.0] * 4, dtype=F64))
    mats = torch.stack([base, symmetric([float(i) for i in range(-5, 7)], seed=10)])
    starts = torch.ones(2, 12, dtype=F64)

    def run(a: torch.Tensor, s: torch.Tensor):
        return lanczos(lambda v: {"x": a @ v["x"]}, {"x": s}, 8)

    diagonal, off = vmap(run)(mats, starts)
    assert torch.isfinite(diagonal).all() and torch.isfinite(off).all()
    low, high = tridiagonal_extremes(diagonal, off)
    assert torch.allclose(low[0], torch.tensor(-2.0, dtype=F64), atol=1e-9)
    assert torch.allclose(high[0], torch.tensor(5.0, dtype=F64), atol=1e-9)
    assert low[1].item() >= -5.0 and high[1].item() <= 6.0
