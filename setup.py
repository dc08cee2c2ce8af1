"""Kept for tools that still call setup.py; everything about the package is in pyproject.toml.

The metadata (name, version, dependencies, extras, the `minirev` command) is written once, in
pyproject.toml's [project] table, and the version once, in minirev/_version.py.
"""
from setuptools import setup

setup()
