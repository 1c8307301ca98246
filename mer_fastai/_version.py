"""The version of mer-fastai, written once: the package metadata (pyproject's dynamic version) reads it from here.

Layer 0 with no imports, so the modules that record the version (model files, run records, reports, `--version`)
take it from here rather than from the facade `mer_fastai`.
"""

__all__ = ["__version__"]

__version__ = "0.2.0"
