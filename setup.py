from setuptools import find_packages, setup

setup(
    name="minirev",
    version="0.1.0",
    description="The reversal curse explained through training dynamics: bilinear model, the paper's "
                "one-layer transformer and a GPT, with every gradient written by hand in NumPy.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["minirev", "minirev.*"]),
    python_requires=">=3.9",
    install_requires=["numpy>=1.22", "autograd>=1.5", "matplotlib>=3.5"],
    extras_require={"test": ["pytest>=7", "jupytext", "nbclient", "ipykernel", "nbformat", "dask[distributed]"],
                    "lessons": ["jupytext", "nbclient", "ipykernel", "nbformat"],   # the lessons as notebooks
                    "cluster": ["dask[distributed]"],               # --scheduler: seeds on a Dask cluster
                    "gpu": ["cupy"]},
)
