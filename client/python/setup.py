# Metadata lives in pyproject.toml; this file only lets `python3 setup.py egg_info` work.
from setuptools import setup

setup()
