"""Do the extras ports still give the numbers of their committed results? A regression check of their
determinism, at the ``small`` budget, seed 0.

Every extras results file ``benchmarks/results/extras_X.md`` has a sidecar ``extras_X.json``
(``brackit.extras.cli_common.write_results_json``) holding the arguments of the command that wrote it.

    python benchmarks/check_extras.py --record   # after regenerating the results: rerun each command at
                                                 # --budget small --seeds 0, keep its numbers and the commit
    python benchmarks/check_extras.py            # rerun them; exit 1 if a number moved (or a results file
                                                 # was written at another commit than the record)

The record is ``benchmarks/results/extras_check.json``. The numbers are compared to ``--atol`` (default
1e-6): the same machine and seed give the same numbers; another CPU model may differ in the last bits of a
float reduction, which can flip an accuracy by one test image, so compare on the machine that recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import subprocess
import sys
import tempfile

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
RECORD = RESULTS / "extras_check.json"
ROOT = RESULTS.parents[1]


def with_small_budget(argv: list[str], out: pathlib.Path) -> list[str]:
    """``argv`` with ``--budget small --seeds 0 --out OUT`` in place of its own values of those options."""
    replaced = {"--budget": "small", "--seeds": "0", "--out": str(out)}
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


def rerun(name: str, argv: list[str]) -> dict[str, float]:
    """Runs ``brackit ARGV`` at the small budget into a temporary folder; seed 0's metrics of ``name``."""
    brackit = pathlib.Path(sys.executable).parent / "brackit"
    with tempfile.TemporaryDirectory() as tmp:
        args = [str(brackit), *with_small_budget(argv, pathlib.Path(tmp))]
        print("$", " ".join(args[1:]), flush=True)
        subprocess.run(args, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        produced = json.loads((pathlib.Path(tmp) / name).read_text())
    return produced["per_seed"]["0"]


def sidecars() -> dict[str, dict]:
    return {
        path.name: json.loads(path.read_text())
        for path in sorted(RESULTS.glob("extras_*.json"))
        if path != RECORD
    }


def differences(expected: dict[str, float], got: dict[str, float], atol: float) -> list[str]:
    out = []
    for key in sorted(set(expected) | set(got)):
        a, b = expected.get(key), got.get(key)
        if a is None or b is None:
            out.append(f"{key}: {'missing now' if b is None else 'new'}")
        elif not (math.isclose(a, b, rel_tol=0.0, abs_tol=atol) or (math.isnan(a) and math.isnan(b))):
            out.append(f"{key}: recorded {a!r}, now {b!r}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--record", action="store_true", help="rerun every results command and record")
    parser.add_argument("--atol", type=float, default=1e-6)
    parser.add_argument("--only", nargs="*", help="sidecar names (extras_X.json) to check or record")
    args = parser.parse_args()
    files = sidecars()
    if args.only:
        files = {k: v for k, v in files.items() if k in args.only}
    if args.record:
        commits = {f["commit"] for f in files.values()}
        previous = json.loads(RECORD.read_text())["entries"] if RECORD.exists() and args.only else {}
        entries = {**previous}
        for name, sidecar in files.items():
            entries[name] = {
                "argv": sidecar["argv"],
                "commit": sidecar["commit"],
                "small": rerun(name, sidecar["argv"]),
            }
        RECORD.write_text(json.dumps({"entries": entries}, indent=1) + "\n")
        print(f"recorded {len(files)} results (commits: {', '.join(sorted(map(str, commits)))}) in {RECORD}")
        return 0
    record = json.loads(RECORD.read_text())["entries"]
    failures = []
    for name, sidecar in files.items():
        if name not in record:
            failures.append(f"{name}: no record (run with --record)")
            continue
        entry = record[name]
        if entry["commit"] != sidecar["commit"]:
            failures.append(f"{name}: results at {sidecar['commit']}, record at {entry['commit']} (--record)")
            continue
        for line in differences(entry["small"], rerun(name, entry["argv"]), args.atol):
            failures.append(f"{name}: {line}")
    for line in failures:
        print("FAIL", line)
    print(f"{len(files)} results checked, {len(failures)} problems")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
