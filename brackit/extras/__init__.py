"""Companion papers ported to JAX: sparse Fourier IHT, FedAvg, randomization tests, SimCLR.

Needs the ``extras`` optional dependencies (``pip install brackit[extras]``).
"""
