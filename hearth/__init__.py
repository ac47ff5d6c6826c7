"""Hearth: serve open LLMs on Kubernetes declaratively and scale them to zero when idle."""

__version__ = "0.1.0"
