"""The wheel as users get it (``make test-wheel``; ``.ci/run`` runs it after ``make test``).

Builds the wheel with ``python -m build --wheel``, then, in a fresh venv in a temporary folder
outside the checkout and from an empty working folder (so nothing of the repository is on the
path):

1. installs the core alone (no extra) and checks that ``import lstmkit`` imports no optional
   package, that ``lstmkit.LSTM`` trains (the loss falls over a few Adam steps), and that a command
   needing an extra (``serve``, ``studio``) is one line naming ``pip install 'lstmkit[EXTRA]'``,
   exit status 2;
2. installs ``[all]`` on top, and runs ``lstmkit --version``, the fastest packaged recipe with
   ``--quick``, ``lstmkit studio`` answering ``/api/options`` with the packaged recipes and
   ``lstmkit serve`` on the quick run answering ``/v1/predict`` (both on 127.0.0.1, a free port,
   stopped after).

Run it from the repository root: ``python tests/wheel_check.py [--constraints constraints.txt]``.
Data: ``$LSTMKIT_DATA`` (the recipe reads its data set from there). Prints one line per check and
the seconds of each step; exits 1 at the first failure, with the command's output.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the fastest packaged recipe end to end in --quick mode (~6 s; imdb-seed003 ~9 s)
QUICK_RECIPE = "reuters-seed002"
# what `import lstmkit` must not import: the extras' packages, and the heavy ones of the core
# that only some commands use (matplotlib)
OPTIONAL = (
    "fastapi",
    "uvicorn",
    "starlette",
    "sklearn",
    "scipy",
    "gensim",
    "sentencepiece",
    "pyarrow",
    "statsmodels",
    "statsforecast",
    "onnx",
    "onnxruntime",
    "matplotlib",
    "keras",
)
TRAIN_A_LAYER = """
import sys, torch, lstmkit
torch.manual_seed(0)
heavy = sorted(m for m in {optional!r} if m in sys.modules)
assert not heavy, f"import lstmkit imported {{heavy}}"
layer = lstmkit.LSTM(3, 16)
head = torch.nn.Linear(16, 1)
opt = torch.optim.Adam([*layer.parameters(), *head.parameters()], lr=0.01)
x = torch.randn(32, 10, 3)           # (B, T, D)
y = x[:, :, 0].sum(1, keepdim=True)  # remember the sum of the first feature
losses = []
for _ in range(30):
    out, _ = layer(x)                # (B, T, H)
    loss = torch.nn.functional.mse_loss(head(out[:, -1]), y)
    opt.zero_grad(); loss.backward(); opt.step()
    losses.append(loss.item())
assert losses[-1] < 0.5 * losses[0], losses
print(f"lstmkit {{lstmkit.__version__}}: LSTM loss {{losses[0]:.3f}} -> {{losses[-1]:.3f}} in 30 steps")
"""


class CheckFailed(Exception):
    """A check of the wheel that did not hold (the message says which and shows the output)."""


@contextmanager
def step(name: str) -> Iterator[None]:
    """Print ``name``, time the block, print its seconds."""
    print(f"-- {name}", flush=True)
    start = time.perf_counter()
    yield
    print(f"   ok ({time.perf_counter() - start:.1f} s)", flush=True)


def run(
    argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str], expect: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; CheckFailed with its output unless it exits ``expect``."""
    got = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if got.returncode != expect:
        raise CheckFailed(
            f"{' '.join(map(str, argv))} exited {got.returncode} (expected {expect}):\n"
            f"{got.stdout[-4000:]}\n{got.stderr[-4000:]}"
        )
    return got


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_json(url: str, body: object | None = None, timeout: float = 10.0) -> object:
    """GET (or POST ``body`` as JSON to) ``url``; the decoded JSON answer."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


@contextmanager
def server(argv: Sequence[str | Path], *, cwd: Path, env: dict[str, str], log: Path,
           ready: str, timeout: float = 90.0) -> Iterator[None]:  # fmt: skip
    """Start ``argv``; wait until GET ``ready`` answers; stop it (SIGINT, then SIGKILL) after."""
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(a) for a in argv], cwd=cwd, env=env, stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise CheckFailed(f"{argv[0]} exited {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                http_json(ready, timeout=2.0)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CheckFailed(f"{ready} did not answer in {timeout:.0f} s") from None
                time.sleep(0.3)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def one_error_line(got: subprocess.CompletedProcess[str], extra: str) -> str:
    """The single stderr line of a command that needs ``extra``; CheckFailed otherwise."""
    lines = got.stderr.strip().splitlines()
    hint = f"pip install 'lstmkit[{extra}]'"
    if len(lines) != 1 or hint not in lines[0] or "Traceback" in got.stderr:
        raise CheckFailed(f"expected one line naming {hint}, got:\n{got.stderr[-4000:]}")
    return lines[0]


def check_wheel_contents(wheel: Path) -> None:
    """The packaged recipes, the web pages and the kernel's source are inside the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    recipes = sorted(p.name for p in (ROOT / "lstmkit" / "recipes").glob("*.toml"))
    missing = [r for r in recipes if f"lstmkit/recipes/{r}" not in names]
    for need in ("lstmkit/kernels/lstm_step.cpp", "lstmkit/studio/static/index.html"):
        if need not in names:
            missing.append(need)
    if missing:
        raise CheckFailed(f"{wheel.name} lacks {', '.join(missing)}")
    print(f"   {wheel.name}: {len(names)} files, the {len(recipes)} packaged recipes among them")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, help="pip -c file (the CI's torch pin)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    constraints = ["-c", str(args.constraints.resolve())] if args.constraints else []
    tmp = Path(tempfile.mkdtemp(prefix="lstmkit-wheel-"))
    started = time.perf_counter()
    try:
        with step(f"build the wheel (python -m build --wheel) into {tmp}/dist"):
            run([sys.executable, "-m", "build", "--wheel", "--outdir", tmp / "dist", ROOT],
                cwd=ROOT, env=dict(os.environ))  # fmt: skip
            (wheel,) = (tmp / "dist").glob("lstmkit-*.whl")
            check_wheel_contents(wheel)

        venv, empty = tmp / "venv", tmp / "empty"
        empty.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.setdefault("OMP_NUM_THREADS", "1")
        python, pip, lstmkit = (
            venv / "bin" / "python",
            venv / "bin" / "pip",
            venv / "bin" / "lstmkit",
        )

        # --no-compile: pip would byte-compile every file of torch (minutes); the first imports do
        # it for the modules they use
        with step("core only: a fresh venv, pip install lstmkit (no extra)"):
            run([sys.executable, "-m", "venv", venv], cwd=tmp, env=env)
            run(
                [pip, "install", "--quiet", "--no-compile", *constraints, wheel], cwd=empty, env=env
            )
        with step("core only: import lstmkit (no optional package), an LSTM trains"):
            got = run([python, "-c", TRAIN_A_LAYER.format(optional=OPTIONAL)], cwd=empty, env=env)
            print("   " + got.stdout.strip())
            got = run([lstmkit, "--version"], cwd=empty, env=env)
            if got.stdout.strip() != f"lstmkit {version}":
                raise CheckFailed(f"lstmkit --version said {got.stdout!r}, not lstmkit {version}")
        with step("core only: a command that needs an extra is one line naming it (exit 2)"):
            for command, extra in ((["serve", "nowhere"], "serve"), (["studio"], "studio")):
                got = run([lstmkit, *command], cwd=empty, env=env, expect=2)
                print("   " + one_error_line(got, extra))

        with step("pip install 'lstmkit[all]' (constraints: " + " ".join(constraints[1:]) + ")"):
            run(
                [pip, "install", "--quiet", "--no-compile", *constraints, f"{wheel}[all]"],
                cwd=empty,
                env=env,
            )
        with step(f"from an empty folder: lstmkit --version, lstmkit train {QUICK_RECIPE} --quick"):
            got = run([lstmkit, "--version"], cwd=empty, env=env)
            print("   " + got.stdout.strip())
            got = run([lstmkit, "train", QUICK_RECIPE, "--quick", "--out", "run", "--no-progress"],
                      cwd=empty, env=env)  # fmt: skip
            print("   " + got.stdout.strip().splitlines()[-1])
            if not (empty / "run" / "model.safetensors").is_file():
                raise CheckFailed("the quick run wrote no model.safetensors")
        with step("lstmkit studio (127.0.0.1): /api/options lists the packaged recipes"):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with server([lstmkit, "studio", "--home", "studio-home", "--port", port],
                        cwd=empty, env=env, log=tmp / "studio.log",
                        ready=f"{base}/api/options"):  # fmt: skip
                options = http_json(f"{base}/api/options")
            assert isinstance(options, dict)
            offered = {r["name"] for r in options["recipes"] if not r.get("error")}
            packaged = {p.stem for p in (ROOT / "lstmkit" / "recipes").glob("*.toml")}
            if not packaged <= offered:
                raise CheckFailed(f"/api/options lacks {sorted(packaged - offered)}")
            print(f"   {len(offered)} recipes offered: {', '.join(sorted(offered))}")
        with step("lstmkit serve on the quick run (127.0.0.1): POST /v1/predict"):
            port = free_port()
            base = f"http://127.0.0.1:{port}"
            with server([lstmkit, "serve", "run", "--port", port, "--no-access-log"],
                        cwd=empty, env=env, log=tmp / "serve.log", ready=f"{base}/health"):  # fmt: skip
                answer = http_json(f"{base}/v1/predict", {"texts": ["oil prices rose in march"]})
            assert isinstance(answer, dict)
            (result,) = answer["predictions"]
            if result["label"] not in result["scores"]:
                raise CheckFailed(f"/v1/predict answered {answer}")
            print(f"   label {result['label']!r} of {len(result['scores'])} classes")
    except CheckFailed as err:
        print(f"FAILED: {err}", file=sys.stderr)
        print(f"(the temporary folder {tmp} is kept)", file=sys.stderr)
        return 1
    if not args.keep:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wheel check passed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
