"""The machinery that makes runs safe and parallel: none of it is needed to follow a training step.

    checkpoint.py   save and resume a run (state.json + one arrays .npz), save_model / load_model
    validate.py     every field of a checkpoint checked before anything is loaded
    paths.py        output paths checked before training (figures, JSON, checkpoint folders, odd names)
    files.py        atomic writes into folders held open, figures and JSON together
    lock.py         the lock of a checkpoint folder, on a file minirev alone makes
    limits.py       memory estimates: a run too large is refused before anything is allocated
    parallel.py     seeds side by side: processes here, or a Dask cluster

The student's core (layers, models, optimisers, the training loop, the trace, the
gradient check, the data, the backend) never imports this package
(tests/test_structure.py checks it).
"""

# the variables that set the BLAS library's threads, read once when NumPy loads (minirev/__init__.py, parallel.py)
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
