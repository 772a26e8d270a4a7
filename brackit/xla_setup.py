"""One XLA CPU device per core, so that several runs sharded across them keep every core busy.

On CPU, XLA runs one program's matmuls on a shared thread pool but most of its elementwise fusions on one
thread; at brackit's sizes (batch 256, 200-300 wide layers) a single program leaves part of a 2-core
machine idle. Split the host into one device per core and shard the run axis across them
(``train(devices="auto")``, ``brackit train --devices auto``): each device runs its share of the seeds as
its own vmapped program, side by side. ``benchmarks/throughput.py`` and ``throughput_family.py`` measure
the gain (rows with 2 devices on the 2-core machine in ``benchmarks/results``).

Splitting changes nothing for a program placed on one device (it runs on device 0 with the whole thread
pool); it only makes more devices available. JAX reads the flag when it starts its CPU backend, so
``request_host_devices`` must run before the first JAX computation: the ``brackit`` CLI calls it first
thing; library users call it at the top of their script. ``BRACKIT_HOST_DEVICES=N`` chooses the count
(``1`` keeps one device); an ``XLA_FLAGS`` that already sets the flag wins over both. GPUs and TPUs are not
affected: the flag only concerns the CPU platform.
"""

from __future__ import annotations

import os

from brackit.errors import ConfigError

FLAG = "--xla_force_host_platform_device_count"
ENV = "BRACKIT_HOST_DEVICES"


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS reports it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def with_host_devices(xla_flags: str, count: int) -> str:
    """``xla_flags`` with ``FLAG=count`` appended, unless it already sets the flag (an explicit choice)."""
    if count < 1:
        raise ConfigError(f"host device count must be >= 1, got {count}")
    if FLAG in xla_flags:
        return xla_flags.strip()
    return f"{xla_flags.strip()} {FLAG}={count}".strip()


def positive_int(text: str) -> int | None:
    """``text`` as a positive integer, or None if it is not one."""
    try:
        value = int(text)
    except ValueError:
        return None
    return value if value >= 1 else None


def requested_count() -> int:
    """``BRACKIT_HOST_DEVICES`` if set (a positive integer), else the number of available cores."""
    value = os.environ.get(ENV)
    if value is None or value.strip() == "":
        return available_cores()
    count = positive_int(value)
    if count is None:
        raise ConfigError(f"environment variable {ENV}={value!r}: expected a positive integer")
    return count


def request_host_devices(count: int | None = None) -> int:
    """Asks XLA for ``count`` CPU devices (default: ``requested_count()``) by adding the flag to
    ``XLA_FLAGS`` in this process; returns the count asked for. Takes effect only if JAX has not started
    its CPU backend yet; ``XLA_FLAGS`` that already set the flag are left as they are."""
    count = requested_count() if count is None else count
    os.environ["XLA_FLAGS"] = with_host_devices(os.environ.get("XLA_FLAGS", ""), count)
    return count
