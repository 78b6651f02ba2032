"""CPU speed for MLX's Linux wheel: a fast BLAS (blas, preload) and where to compute in fp32 (compute).

`temper.core.accel.blas.blas_status()` tells which BLAS MLX's matrix products run on (for
`temper --version` and the Performance tab). Nothing here imports MLX at import time.
"""
