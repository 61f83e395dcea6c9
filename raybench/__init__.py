"""raybench: bilevel-optimization solvers for meta-learning, benchmarked side by side.

Importing the package is cheap; torch, Ray and Optuna load only in the modules that use them.
"""

__version__ = "0.1.0"
