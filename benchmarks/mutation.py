"""Mutation testing of the guards: do the tests notice when the code that refuses, splits, scales
or saves is broken? ``mutmut`` (3.x) plants one small change at a time (a comparison flipped, a
constant moved, a call dropped) in each guard below and runs the tests named for it; a change no
test fails on is a survivor. Usage (``make mutation``; slow, not in ``make test``)::

    python benchmarks/mutation.py [--only checkpoint,auth] [--work DIR] [--out results/mutation.json]
        [--recheck]

Each target runs in its own copy of the working tree (``--work``, default a temporary folder), so
nothing is written into the checkout but ``--out``: its configuration (a ``setup.cfg`` written
into the copy, from :data:`TARGETS`) mutates only the target's file -- only the named functions
where a file also holds other things -- and runs only the target's test files, one mutant at a
time (``--max-children 1``), pytest stopping at the first failure.

``results/mutation.json``: per file, ``killed`` (a test failed, or it timed out), ``survived``,
``equivalent`` (survivors that change nothing a caller can see, each with the reason: see
:data:`EQUIVALENT`), ``no_tests``, ``total``, ``kill_rate`` = killed / (killed + survived +
no_tests), and
each survivor's diff; ``not_run``: mutants a stopped run did not reach (not in the rate; ``goal_met``
is false while there are any).
Goal: ``kill_rate`` >= 0.95 on every file.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOAL = 0.95


@dataclass(frozen=True)
class Target:
    """One guard: its file, the functions mutated (mutmut's names: ``x_func`` for a function,
    ``xǁClassǁmethod`` for a method; empty: the whole file) and the tests that must notice."""

    name: str
    path: str
    tests: tuple[str, ...]
    functions: tuple[str, ...] = ()
    what: str = ""
    pytest_args: tuple[str, ...] = ()  # e.g. -k to keep a test file's slow trainings out


TARGETS = (
    Target("auth", "lstmkit/serve/auth.py",
           ("tests/serve/test_api.py", "tests/serve/test_operations.py", "tests/studio/test_app.py",
            "tests/mutation/test_token.py"),
           what="the bearer-token check of serve and the studio, and where serve reads its token"),
    Target("bodylimit", "lstmkit/serve/bodylimit.py",
           ("tests/serve/test_body_limits.py", "tests/mutation/test_bodylimit.py"),
           what="the request-body limit (Content-Length and chunked)"),
    Target("same-site", "lstmkit/studio/app.py", ("tests/studio/test_app.py",),
           ("x__host_name", "xǁ_SameSiteǁ*", "x__refuse"),
           what="the studio's same-site and Host checks"),
    Target("uploads", "lstmkit/studio/uploads.py",
           ("tests/studio/test_routes_uploads.py",),
           what="the studio's upload checks (format, table, path)"),
    Target("names", "lstmkit/studio/params.py",
           ("tests/studio/test_params.py", "tests/studio/test_routes_options.py",
            "tests/mutation/test_studio_recipes.py"),
           ("x_recipe_catalog",),
           what="the studio's recipe catalogue and its name check"),
    Target("split", "lstmkit/data/text.py", ("tests/data/test_text.py",),
           ("x_stratified_split", "x_class_balance", "xǁClassBalanceǁ*", "x_label_ids",
            "x_class_names"),
           what="the labelled-text split, class ids and balance"),
    Target("scaler", "lstmkit/data/series.py", ("tests/data/test_series.py",),
           ("xǁScalerǁ*",),
           what="the series scaler"),
    Target("baselines", "lstmkit/baselines/series.py",
           ("tests/tasks/test_forecast.py", "tests/mutation/test_baselines_series.py"),
           what="the Holt-Winters baseline", pytest_args=("-k", "holt_winters or baselines_series")),
    Target("checkpoint", "lstmkit/checkpoint.py",
           ("tests/test_checkpoint_verify.py", "tests/test_storage_errors.py"),
           what="checkpoints: atomic save, manifest, verify, resume"),
)  # fmt: skip

# Survivors that change nothing a caller can see, by file and the line they change (the diff's
# removed and added line, stripped): not counted against the file's kill rate.
EQUIVALENT: dict[tuple[str, str, str], str] = {
    (
        "lstmkit/serve/auth.py",
        'headers={"WWW-Authenticate": "Bearer"},',
        'headers={"www-authenticate": "Bearer"},',
    ): "HTTP header names are case-insensitive: the client gets the same WWW-Authenticate header",
    (
        "lstmkit/serve/auth.py",
        'headers={"WWW-Authenticate": "Bearer"},',
        'headers={"WWW-AUTHENTICATE": "Bearer"},',
    ): "HTTP header names are case-insensitive: the client gets the same WWW-Authenticate header",
    (
        "lstmkit/serve/bodylimit.py",
        "refused = False  # the 413 went out: what the app sends after it is dropped",
        "refused = None  # the 413 went out: what the app sends after it is dropped",
    ): "None and False read the same in every use of the flag (`not refused`, `if refused`)",
    (
        "lstmkit/serve/bodylimit.py",
        "started = False  # the app's response began before the body passed the limit",
        "started = None  # the app's response began before the body passed the limit",
    ): "None and False read the same in every use of the flag (`not started`)",
    (
        "lstmkit/studio/app.py",
        'return netloc[1:].partition("]")[0]',
        'return netloc[1:].rpartition("]")[0]',
    ): "a bracketed IPv6 literal holds one ']': the first and the last are the same one",
    (
        "lstmkit/studio/app.py",
        'return netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc',
        'return netloc.partition(":")[0] if netloc.count(":") == 1 else netloc',
    ): "with exactly one ':' its first and last occurrence are the same",
    **{
        ("lstmkit/studio/app.py", line, line.replace('"latin-1"', '"LATIN-1"')): (
            "Python's codec names are case-insensitive: 'LATIN-1' is the same codec"
        )
        for line in (
            'host = headers.get(b"host", b"").decode("latin-1")',
            'cross = origin is not None and urlsplit(origin.decode("latin-1")).netloc != host',
        )
    },
    (
        "lstmkit/studio/app.py",
        "f\"cross-site request refused: origin {origin.decode('latin-1')!r} is not \"",
        "f\"cross-site request refused: origin {origin.decode('LATIN-1')!r} is not \"",
    ): "Python's codec names are case-insensitive: 'LATIN-1' is the same codec",
    (
        "lstmkit/data/text.py",
        "n_hold = min(max(1, n_hold), len(members) - 1) if len(members) >= 2 else 0",
        "n_hold = min(max(1, n_hold), len(members) - 1) if (len(members) >= 2) or True else 0",
    ): "a class of one record: min(max(1, n), 1 - 1) is 0 too (the guard only says why)",
    **{
        ("lstmkit/data/text.py", "mask = np.ones(len(labels), dtype=bool)", new): (
            "a float mask of ones and zeros gives np.flatnonzero the same indices"
        )
        for new in ("mask = np.ones(len(labels), dtype=None)", "mask = np.ones(len(labels), )")
    },
    ("lstmkit/data/text.py", "mask[valid] = False", "mask[valid] = None"): (
        "None stored into a boolean array is False"
    ),
    (
        "lstmkit/data/text.py",
        'float(counts.max() / total) if total else float("nan"),',
        'float(counts.max() / total) if total else float("NAN"),',
    ): "float('NAN') is NaN as float('nan') is",
    (
        "lstmkit/serve/auth.py",
        'lines = Path(token_file).read_text(encoding="utf-8").splitlines()',
        'lines = Path(token_file).read_text(encoding="UTF-8").splitlines()',
    ): "Python's codec names are case-insensitive: 'UTF-8' is the same codec",
    (
        "lstmkit/checkpoint.py",
        'with open(path, "rb") as fh:',
        "with open(path, ) as fh:",
    ): (
        "save_tensors opens the written file only to fsync its descriptor: text or binary mode, "
        "the same fsync (in _safetensors_fault the mode matters, and that mutant is killed)"
    ),
    **{
        (
            "lstmkit/checkpoint.py",
            'for block in iter(lambda: fh.read(1 << 20), b""):',
            f'for block in iter(lambda: fh.read({size}), b""):',
        ): (
            "_sha256 reads the whole file whatever the size of a block (None: in one read): the "
            "same bytes into the same digest"
        )
        for size in ("None", "2 << 20", "1 << 21")
    },
    **{
        (
            "lstmkit/checkpoint.py",
            "_write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())",
            f"_write_file(tmp / MANIFEST_FILE, json.dumps(manifest, {indent}).encode())",
        ): (
            "manifest.json is read back only through json.loads (verify_checkpoint) and lists "
            "the other files, not itself: its indentation is whitespace between tokens, the "
            "same object"
        )
        for indent in ("indent=None", "", "indent=2")
    },
    ("lstmkit/serve/auth.py", "UserWarning,", "None,"): (
        "warnings.warn's category None is UserWarning"
    ),
    (
        "lstmkit/serve/auth.py",
        "UserWarning,",
        "",
    ): "warnings.warn's default category is UserWarning",
    # the Holt-Winters baseline: what statsmodels (>= 0.14, pyproject.toml) does with its options
    **{
        ("lstmkit/baselines/series.py", old, new): (
            "statsmodels' ExponentialSmoothing lower-cases its option strings (string_like, "
            "lower=True): 'MUL', 'ADD', 'ESTIMATED' are the same model"
        )
        for old, new in (
            (
                'seasonal = None if season <= 1 else ("mul" if multiplicative else "add")',
                'seasonal = None if season <= 1 else ("MUL" if multiplicative else "add")',
            ),
            (
                'seasonal = None if season <= 1 else ("mul" if multiplicative else "add")',
                'seasonal = None if season <= 1 else ("mul" if multiplicative else "ADD")',
            ),
            ('trend="add",', 'trend="ADD",'),
            ('initialization_method="estimated",', 'initialization_method="ESTIMATED",'),
        )
    },
    ("lstmkit/baselines/series.py", 'initialization_method="estimated", / )', ")"): (
        "'estimated' is ExponentialSmoothing's default initialization_method (statsmodels >= "
        "0.12; pyproject.toml asks for >= 0.14): the same fit without the argument"
    ),
    (
        "lstmkit/baselines/series.py",
        "seasonal_periods=season if seasonal else None,",
        "seasonal_periods=season if (seasonal) or True else None,",
    ): (
        "without a seasonal component ExponentialSmoothing ignores seasonal_periods (it sets it "
        "to 0 whatever is passed): the same model"
    ),
    (
        "lstmkit/baselines/series.py",
        'seasons=np.asarray(p["initial_seasons"], dtype=np.float64) if seasonal else np.empty(0),',
        'seasons=np.asarray(p["initial_seasons"], dtype=np.float64) if (seasonal) or True else '
        "np.empty(0),",
    ): (
        "a fit without a season has initial_seasons = an empty float64 array in statsmodels: "
        "np.asarray of it is the np.empty(0) of the else"
    ),
    **{
        (
            "lstmkit/baselines/series.py",
            'seasons=np.asarray(p["initial_seasons"], dtype=np.float64) if seasonal else '
            "np.empty(0),",
            new,
        ): (
            "statsmodels' initial_seasons is a float64 ndarray already: np.asarray without the "
            "dtype gives the same float64 array"
        )
        for new in (
            'seasons=np.asarray(p["initial_seasons"], dtype=None) if seasonal else np.empty(0),',
            'seasons=np.asarray(p["initial_seasons"], ) if seasonal else np.empty(0),',
        )
    },
    (
        "lstmkit/baselines/series.py",
        "for i in range(int(origins[-1]) + 1):",
        "for i in range(int(origins[-1]) + 2):",
    ): (
        "every forecast is written at its origin; one more pass after the last origin only "
        "updates the local level/trend/season (and stops at len(y)): the same output"
    ),
    **{
        (
            "lstmkit/baselines/series.py",
            "idx = [i + k if k < m - 1 else i - 1 + (k - (m - 1)) % m for k in range(horizon)]",
            new,
        ): (
            "for 0 <= k < m - 1, (k - (m - 1)) % m is k + 1, so the else branch's index "
            "i - 1 + (k + 1) is the first branch's i + k: the same season for every step"
        )
        for new in (
            "idx = [i + k if (k < m - 1) and False else i - 1 + (k - (m - 1)) % m "
            "for k in range(horizon)]",
            "idx = [i + k if k < m - 2 else i - 1 + (k - (m - 1)) % m for k in range(horizon)]",
        )
    },
}

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no_tests", 33: "no_tests", 34: "skipped"}
TIMEOUTS = {36, 24, -24, 152, 255}
KILLED = {1, 3} | TIMEOUTS


def _copy_tree(dest: Path) -> None:
    """The working tree's files (tracked, and untracked but not ignored) copied into ``dest``."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for rel in filter(None, listed.split("\0")):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def _drop_pyproject_mutmut(path: Path) -> None:
    """mutmut reads ``[tool.mutmut]`` of pyproject.toml before setup.cfg: the copy's goes, so
    that each target runs with its own configuration."""
    if not path.exists():
        return
    kept, skipping = [], False
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("["):
            skipping = line.strip().startswith("[tool.mutmut")
        if not skipping:
            kept.append(line)
    path.write_text("".join(kept), encoding="utf-8")


def _setup_cfg(target: Target) -> str:
    def lines(key: str, values: list[str]) -> str:
        return f"{key}=" + "\n    ".join(values) + "\n"

    return (
        "[mutmut]\nsource_paths=lstmkit\n"
        + f"only_mutate={target.path}\n"
        + lines("pytest_add_cli_args_test_selection", list(target.tests))
        + lines(
            "pytest_add_cli_args",
            ["-p", "no:xdist", "-p", "no:cacheprovider", "-x", "-q", *target.pytest_args],
        )
        + "process_isolation=forkserver\n"
    )


def _module(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _patterns(target: Target) -> list[str]:
    module = _module(target.path)
    return [f"{module}.{f}__mutmut_*" for f in target.functions]


def _diff(work: Path, mutant: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mutmut", "show", mutant],
        cwd=work,
        capture_output=True,
        text=True,
        check=False,
    )
    return "\n".join(
        line for line in proc.stdout.splitlines() if line.startswith(("-", "+", "@"))
    ).strip()


def _changed_lines(diff: str) -> tuple[str, str]:
    removed = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("-") and ln[1:3] != "--"]
    added = [ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+") and ln[1:3] != "++"]
    return " / ".join(removed), " / ".join(added)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def recheck_ok(target: Target, previous: dict[str, Any] | None) -> bool:
    return (
        previous is not None
        and previous.get("sha256") == _sha256(ROOT / target.path)
        and "codes" in previous
    )


def run_target(
    target: Target,
    work: Path,
    timeout_s: float,
    previous: dict[str, Any] | None = None,
    collect: bool = False,
) -> dict[str, Any]:
    """mutmut over one target in its own copy of the tree; its counts and survivors.
    ``previous``: the target's last row; when its file is unchanged since (same sha256), only
    its survivors are run again (tests added since cannot revive a killed mutant)."""
    if collect:  # what a run left (one stopped before its end: the mutants it reached)
        return _results(target, work, 0.0, previous if recheck_ok(target, previous) else None)
    recheck = (
        previous is not None
        and previous.get("sha256") == _sha256(ROOT / target.path)
        and "codes" in previous
    )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    _copy_tree(work)
    (work / "setup.cfg").write_text(_setup_cfg(target), encoding="utf-8")
    _drop_pyproject_mutmut(work / "pyproject.toml")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    before: dict[str, int | None] = dict(previous["codes"]) if recheck and previous else {}
    names = [k for k, v in before.items() if v not in KILLED] if recheck else _patterns(target)
    if recheck and not names:
        return {**previous, "rechecked": "no survivors to run again"}  # type: ignore[dict-item]
    start = time.monotonic()
    # stopped at the time limit: the mutants it reached count, the rest are not_run
    with open(work / "mutmut.log", "wb") as log, contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [sys.executable, "-m", "mutmut", "run", "--max-children", "1", *names],
            cwd=work,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    return _results(target, work, time.monotonic() - start, previous if recheck else None)


def _results(
    target: Target, work: Path, seconds: float, previous: dict[str, Any] | None
) -> dict[str, Any]:
    """Counts and survivors from mutmut's record in ``work`` (``previous``: a recheck's last
    row, whose killed mutants stand)."""
    recheck = previous is not None
    before: dict[str, int | None] = dict(previous["codes"]) if previous else {}
    meta_file = work / "mutants" / f"{target.path}.meta"
    if not meta_file.exists():
        tail = (work / "mutmut.log").read_text(errors="replace")[-600:]
        return {"error": f"mutmut left no results: {tail}"}
    codes: dict[str, int | None] = json.loads(meta_file.read_text())["exit_code_by_key"]
    patterns = _patterns(target)
    if patterns:
        codes = {k: v for k, v in codes.items() if any(fnmatch.fnmatch(k, p) for p in patterns)}
    if recheck:  # the killed ones as they were, the survivors as they are now
        codes = {k: (v if v in KILLED else codes.get(k)) for k, v in before.items()}
    counts = {"killed": 0, "survived": 0, "equivalent": 0, "no_tests": 0, "not_run": 0}
    survivors = []
    for mutant, code in sorted(codes.items(), key=lambda kv: _natural(kv[0])):
        status = "killed" if code in TIMEOUTS else STATUS.get(code, "not_run")  # type: ignore[arg-type]
        if status == "skipped":
            status = "not_run"
        if status in ("survived", "no_tests"):
            diff = _diff(work, mutant)
            removed, added = _changed_lines(diff)
            reason = EQUIVALENT.get((target.path, removed, added))
            if reason is not None:
                status = "equivalent"
            survivors.append(
                {"mutant": mutant, "status": status, "diff": diff, "equivalent": reason}
            )
        counts[status] += 1
    total = len(codes)
    judged = counts["killed"] + counts["survived"] + counts["no_tests"]  # run, not equivalent
    return {
        "what": target.what,
        "functions": list(target.functions) or "the whole file",
        "tests": list(target.tests),
        **counts,
        "total": total,
        "kill_rate": round(counts["killed"] / judged, 4) if judged else None,
        # a stopped run (mutants not reached) has not shown the goal, whatever its rate
        "goal_met": judged > 0 and counts["killed"] / judged >= GOAL and not counts["not_run"],
        "seconds": round(seconds),
        "rechecked": "survivors of the previous run only" if recheck else False,
        "sha256": _sha256(ROOT / target.path),
        "survivors": survivors,
        "codes": codes,
    }


def _natural(name: str) -> tuple[str, int]:
    match = re.search(r"__mutmut_(\d+)$", name)
    return (name[: match.start()] if match else name, int(match.group(1)) if match else 0)


def _commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "lstmkit", "tests"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return proc.stdout.strip() + ("-dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    """Command line; exit 1 when a file ran below the goal or failed to run."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="comma-separated target names")
    parser.add_argument("--work", type=Path, help="folder for the copies (default: a temp one)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "mutation.json")
    parser.add_argument("--timeout-min", type=float, default=90.0, help="per target")
    parser.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: read what the runs in --work left (a stopped run: the mutants reached)",
    )
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="run only the last run's survivors of each file unchanged since (after adding tests)",
    )
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    unknown = only - {t.name for t in TARGETS}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}; known: {[t.name for t in TARGETS]}")
    import mutmut  # the dev extra

    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    files: dict[str, Any] = dict(previous.get("files", {}))
    base = args.work or Path(tempfile.mkdtemp(prefix="lstmkit-mutation-"))
    failed = False
    for target in TARGETS:
        if only and target.name not in only:
            continue
        key = target.path if not target.functions else f"{target.path}::{target.name}"
        last = files.get(key) if args.recheck else None
        if args.collect:
            last = files.get(key)
        row = run_target(target, base / target.name, args.timeout_min * 60, last, args.collect)
        row = {"target": target.name, **row, "commit": _commit()}
        files[key] = row
        failed |= not row.get("goal_met", False)
        summary = {k: row.get(k) for k in ("target", "killed", "survived", "equivalent", "total")}
        print(json.dumps({**summary, "kill_rate": row.get("kill_rate"), "error": row.get("error")}))
        result = {
            "tool": f"mutmut {getattr(mutmut, '__version__', '3')}",
            "command": "python benchmarks/mutation.py",
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {platform.system()}",
            "goal": GOAL,
            "files": dict(sorted(files.items())),
        }
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    if args.work is None:
        shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
