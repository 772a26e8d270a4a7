"""Shared header for benchmark reports; it lives in ``brackit.bench`` (re-exported for the scripts here)."""

from brackit.bench import machine_header

__all__ = ["machine_header"]
