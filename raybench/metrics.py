"""What training records, by name: each task's metrics before and after adaptation, the
baselines' classifier metrics, the test tasks' metrics, and the implicit solvers'
assumption measurements at evaluation points. Declared here, without torch, so that the
store's schema (``raybench.results``) can be read without the training stack."""

from __future__ import annotations

METRICS = (
    "support_loss_pre",
    "support_acc_pre",
    "support_loss_post",
    "support_acc_post",
    "query_loss_pre",
    "query_acc_pre",
    "query_loss_post",
    "query_acc_post",
)

# Reported in training only, by the fine-tuning baselines, whose step is not a meta-step:
# their pre-training classifier's loss and accuracy on its batch of training images.
CLASSIFIER_METRICS = ("classifier_loss", "classifier_acc")
TRAIN_METRICS = (*METRICS, *CLASSIFIER_METRICS)

# Accuracies are computed as fractions and stored in percent: the factor per metric.
PERCENT = {m: 100.0 for m in TRAIN_METRICS if "_acc" in m}

# Each fixed test task's results (the ``tasks`` table).
TASK_METRICS = (*(m for m in METRICS if m.startswith("query_")), "support_acc_post")

# Columns of the ``curves`` table (null for solvers without the measurements): worst case
# over the measured tasks unless said otherwise (``raybench.assumptions`` measures them).
CURVE_FIELDS: tuple[tuple[str, type], ...] = (
    ("diag_tasks", int),  # tasks measured
    ("diag_lam", float),  # lam of the inner problem (Neumann: 1/alpha)
    ("diag_stationarity", float),  # max ||grad F(phi)|| / ||grad F(theta)||
    ("diag_hessian_min", float),  # smallest Ritz value of H
    ("diag_hessian_max", float),  # largest Ritz value of H
    ("diag_convexity", float),  # min 1 + lambda_min(H)/lam: > 0 iff I + H/lam is definite
    ("diag_indefinite_tasks", int),  # tasks where it is not
    ("diag_spectral_radius", float),  # max rho(H/lam)
    ("diag_solve_iterations", float),  # mean iterations of the linear solver (CG: until it stopped)
    ("diag_negative_curvature", int),  # tasks whose CG stopped at negative curvature
    ("diag_solve_residual", float),  # max ||A g - b|| / ||b||
)
CURVE_COLUMNS = tuple(name for name, _ in CURVE_FIELDS)
