"""zoo on a shared or quota-limited CPU: the same training (a) alone, (b) beside N busy processes this
script starts and stops, (c) inside a 1-CPU limit (a cgroup v1/v2 CPU quota where this process may
create one, else `taskset` to one CPU), each time zoo as it is against the previous behaviour, in the
same run, interleaved.

    python bench/shared_cpu.py                 # cnn2 on digits, 15 epochs (the README's first command), 3 repeats
    python bench/shared_cpu.py --quick         # 1 epoch, 1 repeat: a smoke run
    python bench/shared_cpu.py --baseline-rev main   # the baseline is a checkout of that commit instead

The baseline ("before"): by default the same code with ZOO_THREADS=off, which restores exactly what zoo
did before it chose threads: torch's defaults (one compute thread per CPU of the affinity mask, the
OpenMP threads spinning while they wait). With --baseline-rev REV it is REV's zoo_core instead, checked
out with `git worktree add` into a temporary folder and put first on PYTHONPATH (the plugins are this
checkout's). The third row of (c) is OMP_NUM_THREADS=1, the issue's yardstick inside a 1-CPU limit.

Each row: wall clock of the whole `zoo train` command, its CPU time (user + system, loader processes
included: os.wait4), the training time zoo reports, and the validation accuracy (the same in every row:
the run is seeded). Goals (issue 23): beside 3 busy processes, zoo's CPU time within 1.3x of alone and
its wall clock <= 4.5x alone (2 cores: a fair share is 2/4 of them); inside a 1-CPU limit, no more than
10% slower than OMP_NUM_THREADS=1. Two cores shared with other jobs distort every figure: the load
average is printed beside each scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ZOO = [sys.executable, "-m", "zoo_core.cli"]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# ------------------------------------------------------------------------------ the ways to run it

class Cgroup:
    """A cgroup with a CPU quota that a child joins before it executes (cgroup v2 cpu.max, else v1
    cpu.cfs_quota_us), or None where this process may not create one (not root, no cpu controller)."""

    def __init__(self, path: Path, version: str):
        self.path, self.version = path, version

    @classmethod
    def create(cls, cpus: float) -> "Cgroup | None":
        name = f"zoo-bench-{os.getpid()}"
        candidates = [(Path("/sys/fs/cgroup"), "v2"), (Path("/sys/fs/cgroup/unified"), "v2"),
                      (Path("/sys/fs/cgroup/cpu,cpuacct"), "v1"), (Path("/sys/fs/cgroup/cpu"), "v1")]
        for base, version in candidates:
            if version == "v2" and "cpu" not in (_read(base / "cgroup.controllers") or "").split():
                continue
            if version == "v1" and not (base / "cpu.cfs_quota_us").exists():
                continue
            path = base / name
            try:
                path.mkdir()
                if version == "v2":
                    (path / "cpu.max").write_text(f"{int(cpus * 100000)} 100000\n")
                else:
                    (path / "cpu.cfs_period_us").write_text("100000\n")
                    (path / "cpu.cfs_quota_us").write_text(f"{int(cpus * 100000)}\n")
                return cls(path, version)
            except OSError:
                with contextlib.suppress(OSError):
                    path.rmdir()
        return None

    def join(self) -> None:  # runs in the child, before exec
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def remove(self) -> None:
        for _ in range(50):  # the children have left; the kernel may take a moment to notice
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)

    def describe(self) -> str:
        quota = (_read(self.path / "cpu.max") if self.version == "v2" else
                 f"{_read(self.path / 'cpu.cfs_quota_us')} / {_read(self.path / 'cpu.cfs_period_us')} us")
        return f"cgroup {self.version} CPU quota of 1 CPU ({self.path}: {quota})"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def run_zoo(args: list[str], env: dict[str, str], out: Path, limit: Cgroup | None = None,
            taskset: str | None = None) -> dict[str, float]:
    command = ZOO + args + ["--out", str(out), "-q"]
    if taskset:
        command = ["taskset", "-c", taskset] + command
    t = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                            preexec_fn=limit.join if limit else None)
    output = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"zoo train failed ({proc.returncode}):\n{output[-3000:]}")
    m = re.search(r"(\w+) ([\d.]+) \(best, epoch \d+\); \w[\w ]* in (\d+)s", output)
    log = (out / "train.log").read_text() if (out / "train.log").is_file() else ""
    threads = next((line.split("] ", 1)[-1] for line in log.splitlines() if "threads:" in line), "")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "train": float(m.group(3)) if m else float("nan"),
            "score": float(m.group(2)) if m else float("nan"), "threads": threads}


@contextlib.contextmanager
def busy_processes(n: int):
    """N processes that spin on a CPU each, like other users' jobs, stopped on the way out."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@contextlib.contextmanager
def baseline_checkout(rev: str | None):
    """PYTHONPATH for the baseline: REV's zoo_core from a temporary git worktree, or None (ZOO_THREADS=off)."""
    if rev is None:
        yield None
        return
    folder = Path(tempfile.mkdtemp(prefix="zoo-baseline-"))
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(folder / "tree"), rev], check=True,
                   capture_output=True)
    try:
        yield str(folder / "tree")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(folder / "tree")],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


# ------------------------------------------------------------------------------------------- main

class _Skip(Exception):
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch, 1 repeat (a smoke run)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs of each run (default 15; --quick 1)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each row, medians shown (default 3; --quick 1)")
    parser.add_argument("--busy", type=int, default=3, help="busy processes in scenario (b)")
    parser.add_argument("--train", default="classify", help="the zoo train arguments (default: classify, cnn2 on digits)")
    parser.add_argument("--scenarios", default="a,b,c", help="which of a (alone), b (beside busy processes), c (1-CPU limit)")
    parser.add_argument("--baseline-rev", default=None, help="a git revision to compare with instead of ZOO_THREADS=off")
    args = parser.parse_args()
    scenarios = set(args.scenarios.replace(" ", "").split(","))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a timeout or kill: still stop the busy processes
    epochs = args.epochs or (1 if args.quick else 15)
    repeats = args.repeats or (1 if args.quick else 3)
    train_args = ["train", *args.train.split(), "--epochs", str(epochs)]

    base_env = {k: v for k, v in os.environ.items()
                if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "ZOO_THREADS")}
    base_env["ZOO_CACHE"] = base_env.get("ZOO_CACHE", tempfile.mkdtemp(prefix="zoo-bench-cache-"))
    work = Path(tempfile.mkdtemp(prefix="zoo-shared-cpu-"))
    counter = iter(range(10**6))
    rows: list[tuple[str, str, dict[str, float], str]] = []

    with baseline_checkout(args.baseline_rev) as baseline_path:
        before = dict(base_env, ZOO_THREADS="off") if baseline_path is None else dict(
            base_env, PYTHONPATH=baseline_path + os.pathsep + base_env.get("PYTHONPATH", ""))
        before_name = "before (ZOO_THREADS=off)" if baseline_path is None else f"before ({args.baseline_rev})"
        variants = {"zoo now": dict(base_env), before_name: before}
        one_thread = dict(before, OMP_NUM_THREADS="1")

        def measure(scenario: str, chosen: dict[str, dict[str, str]], **how) -> None:
            load_before = loadavg()
            results: dict[str, list[dict[str, float]]] = {name: [] for name in chosen}
            for _ in range(repeats):  # interleaved: a change in the machine's load hits every row alike
                for name, env in chosen.items():
                    results[name].append(run_zoo(train_args, env, work / f"run-{next(counter)}", **how))
            load = f"{load_before} -> {loadavg()}"
            for name, runs in results.items():
                summary = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu", "train", "score")}
                summary["threads"] = runs[-1]["threads"]
                rows.append((scenario, name, summary, load))
                print(f"  {scenario:<28} {name:<26} wall {summary['wall']:6.1f}s  cpu {summary['cpu']:6.1f}s  "
                      f"[{summary['threads']}]", flush=True)

        print(f"zoo {' '.join(train_args)}; {repeats} run(s) per row; {os.cpu_count()} CPUs; load {loadavg()}", flush=True)
        if "a" in scenarios:
            measure("(a) alone", variants)
        if "b" in scenarios:
            with busy_processes(args.busy):
                measure(f"(b) beside {args.busy} busy processes", variants)
        limit = Cgroup.create(1.0) if "c" in scenarios else None
        try:
            if "c" not in scenarios:
                raise _Skip
            how = {"limit": limit} if limit else {"taskset": "0"}
            where = limit.describe() if limit else "taskset -c 0 (no cgroup could be created here)"
            print(f"  (c): {where}", flush=True)
            measure("(c) inside a 1-CPU limit", {**variants, "OMP_NUM_THREADS=1": one_thread}, **how)
        except _Skip:
            pass
        finally:
            if limit:
                limit.remove()
    shutil.rmtree(work, ignore_errors=True)

    # --- the table
    alone = {name: r for s, name, r, _ in rows if s == "(a) alone"}
    nan = {"wall": float("nan"), "cpu": float("nan")}
    print()
    print(f"| scenario | zoo | wall clock | CPU time | training (zoo's) | accuracy | wall vs alone | CPU vs alone | load average |")
    print("|---|---|---|---|---|---|---|---|---|")
    for scenario, name, r, load in rows:
        a = alone.get(name) or alone.get("zoo now") or nan
        print(f"| {scenario} | {name} | {r['wall']:.1f} s | {r['cpu']:.1f} s | {r['train']:.0f} s | {r['score']:.4f} | "
              f"{r['wall'] / a['wall']:.2f}x | {r['cpu'] / a['cpu']:.2f}x | {load} |")
    by = {(s, n): r for s, n, r, _ in rows}
    missing = {**nan, "threads": "not run"}
    now_alone, busy = by.get(("(a) alone", "zoo now"), missing), by.get((f"(b) beside {args.busy} busy processes", "zoo now"), missing)
    quota_now = by.get(("(c) inside a 1-CPU limit", "zoo now"), missing)
    quota_one = by.get(("(c) inside a 1-CPU limit", "OMP_NUM_THREADS=1"), missing)
    print()
    print("goals (zoo now):")
    cpu_ratio, wall_ratio, quota_ratio = busy["cpu"] / now_alone["cpu"], busy["wall"] / now_alone["wall"], quota_now["wall"] / quota_one["wall"]
    print(f"  beside {args.busy} busy: CPU time {cpu_ratio:.2f}x alone (goal <= 1.3): {'met' if cpu_ratio <= 1.3 else 'NOT met'}")
    print(f"  beside {args.busy} busy: wall clock {wall_ratio:.2f}x alone (goal <= 4.5): {'met' if wall_ratio <= 4.5 else 'NOT met'}")
    print(f"  1-CPU limit: wall clock {quota_ratio:.2f}x OMP_NUM_THREADS=1 (goal <= 1.10): {'met' if quota_ratio <= 1.1 else 'NOT met'}")
    print(f"  threads chosen: alone [{now_alone['threads']}]; 1-CPU limit [{quota_now['threads']}]")


if __name__ == "__main__":
    main()
