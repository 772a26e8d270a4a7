"""Do the extras ports still give the numbers of their committed results? A regression check of their
determinism, at the ``small`` budget, seed 0.

Every extras results file ``benchmarks/results/extras_X.md`` has a sidecar ``extras_X.json``
(``brackit.extras.cli_common.write_results_json``) holding the arguments of the command that wrote it and
every seed's numbers. Three kinds of file are exempt (``EXEMPT``): the overviews ``extras_fedavg.md`` and
``extras_iht.md``, which only point to the files their commands wrote, and the speed benchmark
``extras_fedavg_bench.md``, whose numbers are wall times (no two runs agree).

    python benchmarks/check_extras.py --record   # after regenerating the results: rerun each command at
                                                 # --budget small --seeds 0, keep its numbers
    python benchmarks/check_extras.py            # rerun them; exit 1 on any problem
    make check-extras                            # the same

A problem is: a results file without its sidecar (or a sidecar without its results file), a results file
whose header names another commit than its sidecar, a sidecar changed since the record (the results were
regenerated: ``--record`` again), a command that fails, or a number that moved. ``--only extras_X.json``
checks or records some sidecars only (the others' entries in the record are kept).

The record is ``benchmarks/results/extras_check.json``: per sidecar, its command, commit and SHA-256, the
commit the record was made at and the small budget's seed-0 numbers. The numbers are compared to
``--atol`` (default 1e-6): the same machine and seed give the same numbers; another CPU model may differ in
the last bits of a float reduction, which can flip an accuracy by one test image, so compare on the
machine that recorded. Exit status: 0 no problem, 1 problems (each on a ``FAIL`` line), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import pathlib
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
RECORD_NAME = "extras_check.json"
ROOT = RESULTS.parents[1]

EXEMPT = {
    "extras_fedavg.md": "an overview: it points to extras_fedavg_2nn.md and extras_fedavg_cnn.md",
    "extras_iht.md": "an overview: it points to extras_iht_recovery.md and extras_iht_defense.md",
    "extras_fedavg_bench.md": "a speed benchmark: its numbers are wall times, which no rerun repeats",
}
"""Results files without a sidecar, and why."""

SMALL = {"--budget": "small", "--seeds": "0"}
"""The options a rerun replaces (and ``--out``, a temporary folder)."""

HEADER_COMMIT = re.compile(r"^- git commit: ([0-9a-f]+)", re.MULTILINE)


def with_small_budget(argv: Sequence[str], out: pathlib.Path) -> list[str]:
    """``argv`` with ``--budget small --seeds 0 --out OUT`` in place of its own values of those options
    (given as ``--opt value`` or ``--opt=value``), the other arguments in their order."""
    replaced = {**SMALL, "--out": str(out)}
    args: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in replaced:
            skip = "=" not in arg
            continue
        args.append(arg)
    for name, value in replaced.items():
        args += [name, value]
    return args


def differences(expected: Mapping[str, float], got: Mapping[str, float], atol: float) -> list[str]:
    """One line per metric that differs by more than ``atol`` (NaN equals NaN only), is missing now or is
    new."""
    out = []
    for key in sorted(set(expected) | set(got)):
        if key not in got:
            out.append(f"{key}: missing now (recorded {expected[key]!r})")
        elif key not in expected:
            out.append(f"{key}: new ({got[key]!r})")
        else:
            a, b = float(expected[key]), float(got[key])
            if math.isnan(a) or math.isnan(b):
                same = math.isnan(a) and math.isnan(b)
            else:
                same = math.isclose(a, b, rel_tol=0.0, abs_tol=atol)
            if not same:
                out.append(f"{key}: recorded {a!r}, now {b!r}")
    return out


def sha256(path: pathlib.Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_sidecars(results: pathlib.Path) -> dict[str, dict]:
    """Every ``extras_*.json`` in ``results`` but the record, by file name."""
    return {
        path.name: json.loads(path.read_text())
        for path in sorted(results.glob("extras_*.json"))
        if path.name != RECORD_NAME
    }


def pairing_problems(results: pathlib.Path, names: Sequence[str] | None = None) -> list[str]:
    """Results files without a sidecar (unless ``EXEMPT``), sidecars without a results file, and results
    files whose header names another commit than their sidecar; ``names`` (sidecar names) limits the
    check to those files."""
    problems = []
    markdown = {p.stem for p in results.glob("extras_*.md")}
    sidecars = {p.stem for p in results.glob("extras_*.json")} - {pathlib.Path(RECORD_NAME).stem}
    wanted = None if names is None else {pathlib.Path(n).stem for n in names}
    for stem in sorted(markdown | sidecars):
        if wanted is not None and stem not in wanted:
            continue
        if stem not in sidecars:
            if f"{stem}.md" not in EXEMPT:
                problems.append(
                    f"{stem}.md: no sidecar {stem}.json (rerun its command with --seeds; or, if it needs "
                    "none, add it to EXEMPT in benchmarks/check_extras.py with the reason)"
                )
            continue
        if stem not in markdown:
            problems.append(f"{stem}.json: no results file {stem}.md beside it")
            continue
        header = HEADER_COMMIT.search((results / f"{stem}.md").read_text())
        commit = json.loads((results / f"{stem}.json").read_text()).get("commit") or ""
        if header is None:
            problems.append(f"{stem}.md: no commit in its header (a '- git commit: HASH' line)")
        elif not commit.startswith(header.group(1)):
            problems.append(
                f"{stem}.md: written at {header.group(1)}, its sidecar at {commit[:12] or 'an unknown commit'} "
                "(one of the two is stale: rerun the command)"
            )
    return problems


class RerunError(Exception):
    """A rerun that did not produce its numbers; the message says why."""


def rerun(name: str, argv: Sequence[str]) -> dict[str, float]:
    """Runs ``brackit ARGV`` (with this interpreter) at the small budget into a temporary folder; returns
    seed 0's metrics of its sidecar ``name``."""
    with tempfile.TemporaryDirectory() as tmp:
        args = with_small_budget(argv, pathlib.Path(tmp))
        print("$ brackit", " ".join(args), flush=True)
        # sys.argv[1:] of the child is ``args``: the command line its own files record.
        code = "import sys; from brackit.cli import main; sys.exit(main())"
        status = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, stdout=subprocess.DEVNULL)
        if status.returncode != 0:
            raise RerunError(f"the command exited with status {status.returncode}")
        produced = pathlib.Path(tmp) / name
        if not produced.is_file():
            raise RerunError(f"the command wrote no {name}")
        per_seed = json.loads(produced.read_text()).get("per_seed", {})
    if "0" not in per_seed:
        raise RerunError(f"{name} has no numbers for seed 0")
    return per_seed["0"]


def git_commit() -> dict[str, object] | None:
    """The commit this checkout is at, and whether it has uncommitted changes."""
    try:
        from brackit.provenance import git_state
    except ImportError:
        return None
    state = git_state()
    return None if state is None else {"commit": state.commit, "dirty": state.dirty}


def record(
    results: pathlib.Path,
    sidecars: Mapping[str, dict],
    only: bool,
    atol: float = 1e-6,
    run: Callable[[str, Sequence[str]], dict[str, float]] | None = None,
) -> int:
    """Reruns each sidecar's command (``run``, default ``rerun``) and writes the record (keeping the other
    entries when ``only``). A sidecar written at the small budget already holds seed 0's numbers: the rerun
    must give them (to ``atol``), or nothing is recorded."""
    run = run or rerun
    path = results / RECORD_NAME
    entries = json.loads(path.read_text())["entries"] if only and path.exists() else {}
    for name, sidecar in sidecars.items():
        try:
            small = run(name, sidecar["argv"])
        except RerunError as error:
            print(f"FAIL {name}: {error}; nothing recorded")
            return 1
        own = sidecar.get("per_seed", {}).get("0")
        if sidecar.get("budget") == "small" and own is not None:
            moved = differences(own, small, atol)
            if moved:
                for line in moved:
                    print(
                        f"FAIL {name}: seed 0 of the results file is not what its command gives now: {line}"
                    )
                print("nothing recorded")
                return 1
        entries[name] = {
            "argv": sidecar["argv"],
            "commit": sidecar.get("commit"),
            "sidecar_sha256": sha256(results / name),
            "recorded_at": git_commit(),
            "small": small,
        }
    payload = {"entries": dict(sorted(entries.items()))}
    path.write_text(json.dumps(payload, indent=1, allow_nan=True) + "\n")
    print(f"recorded {len(sidecars)} results in {path}")
    for name, sidecar in sidecars.items():
        if sidecar.get("dirty"):
            print(f"note: {name} was written from a tree with uncommitted changes at {sidecar.get('commit')}")
    return 0


def check(
    results: pathlib.Path,
    sidecars: Mapping[str, dict],
    names: Sequence[str] | None,
    atol: float,
    run: Callable[[str, Sequence[str]], dict[str, float]] | None = None,
) -> int:
    """Every problem of ``pairing_problems`` and of each sidecar's rerun (``run``, default ``rerun``)
    against the record; 1 if there is any."""
    run = run or rerun
    failures = pairing_problems(results, names)
    path = results / RECORD_NAME
    entries = json.loads(path.read_text())["entries"] if path.exists() else {}
    for name, sidecar in sidecars.items():
        entry = entries.get(name)
        if entry is None:
            failures.append(f"{name}: no record (run benchmarks/check_extras.py --record --only {name})")
            continue
        if entry.get("sidecar_sha256") != sha256(results / name):
            failures.append(
                f"{name}: changed since the record (results at {sidecar.get('commit')}, record of the "
                f"results at {entry.get('commit')}): run --record --only {name}"
            )
            continue
        try:
            got = run(name, entry["argv"])
        except RerunError as error:
            failures.append(f"{name}: {error}")
            continue
        failures += [f"{name}: {line}" for line in differences(entry["small"], got, atol)]
    for line in failures:
        print("FAIL", line)
    print(f"{len(sidecars)} results checked, {len(failures)} problems")
    return 1 if failures else 0


def main(argv: Sequence[str] | None = None, results: pathlib.Path = RESULTS) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", action="store_true", help="rerun every results command and record")
    parser.add_argument("--atol", type=float, default=1e-6, help="largest difference allowed per number")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="sidecar names (extras_X.json) only")
    args = parser.parse_args(argv)
    if not (args.atol >= 0):
        parser.error(f"--atol: expected a number >= 0, got {args.atol}")
    sidecars = load_sidecars(results)
    if args.only:
        unknown = sorted(set(args.only) - set(sidecars))
        if unknown:
            parser.error(
                f"--only: no sidecar {', '.join(unknown)} in {results} (have: {', '.join(sidecars)})"
            )
        sidecars = {name: sidecars[name] for name in args.only}
    if args.record:
        return record(results, sidecars, only=bool(args.only), atol=args.atol)
    return check(results, sidecars, args.only, args.atol)


if __name__ == "__main__":
    sys.exit(main())
