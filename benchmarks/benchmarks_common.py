"""Shared header for benchmark reports: machine, commit, date and the command that produced them."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess


def machine_header(command: str) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
        if dirty.stdout.strip():
            commit += " (with uncommitted changes)"
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    import jax

    devices = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return "\n".join(
        [
            f"- machine: {cpu}, {os.cpu_count()} cores; JAX {jax.__version__} on {devices}",
            f"- commit: {commit}",
            f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- command: `{command}`",
        ]
    )
