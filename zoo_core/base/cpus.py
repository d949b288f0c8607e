"""How many threads a run may use, from what this process may really run on. Torch-free: the waiting
policy has to be in the environment before torch (and its OpenMP) loads, and `zoo --help` must not wait
for torch.

Torch starts one compute thread per CPU it sees, and its OpenMP threads spin while they wait for each
other. On an idle machine that is the fastest there is; on a shared one the spinning threads steal the
cycles the work needs (measured on the 2-core VM at load 11: 5x the CPU time and 1.8x the wall clock of
one thread, for the same result), and in a container limited to 1-2 CPUs on a many-core host torch
starts a thread per *host* core and the quota throttles them all. What others do:

- Go (uber-go/automaxprocs, and the runtime itself since Go 1.25) sets GOMAXPROCS from the cgroup CPU
  quota (v1 cpu.cfs_quota_us / cpu.cfs_period_us, v2 cpu.max), found through /proc/self/cgroup and
  /proc/self/mountinfo; automaxprocs rounds the quota down, at least 1.
- The JVM (container support, JDK 10+) takes the smaller of the affinity mask and the quota, rounded up.
- loky's cpu_count (joblib) takes the smallest of os.cpu_count, the affinity mask, the cgroup quota
  (rounded up) and LOKY_MAX_CPU_COUNT.

zoo takes the smallest of the affinity mask and the quota of this process's cgroup and of every cgroup
above it (a parent's limit binds too), rounded down like automaxprocs: a thread that exceeds a
fractional quota is throttled at the end of each period while the others wait for it at the next
barrier, so half a CPU is left to the Python thread and the loaders rather than given a compute thread.
Then it removes the data-loading processes it starts (they run beside the compute threads), and gives a
small model one thread: a step too small to be split costs the same CPU time per thread and gains no
wall clock (trainer glue: zoo_core/training/run_threads.py). The user's own choice wins: OMP_NUM_THREADS or
MKL_NUM_THREADS in the environment, torch.set_num_threads before the run, or ZOO_THREADS=N; ZOO_THREADS=off
restores torch's own defaults (and spinning waits) entirely.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

# A training step whose forward pass costs less than this many floating-point operations (the whole
# batch) runs on one thread: the embedded defaults' CNNs (cnn2 on 28 px digits, batch 64: 0.13 GFLOP) and a
# linear head on cached features (a few MFLOP); EfficientNet-Lite0 at 224 px is 13 GFLOP a batch of 32.
# Steps this small are many short parallel regions, where threads mostly wait for each other: on a shared
# machine one descheduled thread stalls them all at every barrier (issue 23: one thread took the same wall
# clock and less CPU than two).
SMALL_STEP_FLOPS = 1e9
USER_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
SWITCH = "ZOO_THREADS"  # auto (default), off (torch's defaults, as before zoo chose), or a number


@dataclass(frozen=True)
class CPUs:
    """The CPUs this process may use, and where that number comes from."""

    count: int  # >= 1
    host: int
    affinity: int | None  # CPUs in the affinity mask (None where the OS has none)
    quota: float | None  # the tightest cgroup CPU limit, in CPUs (None: no limit)
    quota_file: str = ""

    def describe(self) -> str:
        parts = [f"{self.host} on the host"]
        if self.affinity is not None and self.affinity != self.host:
            parts.append(f"affinity {self.affinity}")
        parts.append(f"cgroup quota {self.quota:g} ({self.quota_file})" if self.quota is not None else "no cgroup quota")
        return f"{self.count} CPU{'s' if self.count != 1 else ''} usable ({', '.join(parts)})"


def affinity_count() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS, Windows
        return None


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _mounts(proc: Path) -> list[tuple[str, str, str, set[str]]]:
    """cgroup mounts from mountinfo: (fs type, root inside the hierarchy, mount point, v1 controllers)."""
    text = _read(proc / "self" / "mountinfo") or ""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        pre, post = line.split(" - ", 1)
        pre_fields, post_fields = pre.split(), post.split()
        if len(post_fields) < 1 or post_fields[0] not in ("cgroup", "cgroup2"):
            continue
        options = set(post_fields[2].split(",")) if len(post_fields) > 2 else set()
        out.append((post_fields[0], pre_fields[3], pre_fields[4], options))
    return out


def _cgroup_dirs(proc: Path, fs_root: Path) -> list[tuple[str, Path, Path]]:
    """(version, this process's cgroup directory, the hierarchy's mount point) for the CPU controller."""
    text = _read(proc / "self" / "cgroup") or ""
    found = []
    for kind, root, mount, options in _mounts(proc):
        for line in text.splitlines():
            hid, controllers, path = (line.split(":", 2) + ["", ""])[:3]
            v2 = kind == "cgroup2" and hid == "0" and controllers == ""
            v1 = kind == "cgroup" and "cpu" in controllers.split(",") and "cpu" in options
            if not (v1 or v2):
                continue
            # The mount shows the hierarchy from `root` down (a container sees its own cgroup as "/").
            relative = os.path.relpath(path, root) if path.startswith(root) else path.lstrip("/")
            base = fs_root / mount.lstrip("/")
            here = (base / relative).resolve() if relative != "." else base
            if not str(here).startswith(str(base)) or not here.is_dir():
                here = base
            found.append(("v2" if v2 else "v1", here, base))
    return found


def cgroup_cpu_limit(proc: str | Path = "/proc", fs_root: str | Path = "/") -> tuple[float | None, str]:
    """(CPUs, the file that says so): the tightest CPU bandwidth limit on this process's cgroup and the
    cgroups above it, v2 (cpu.max: "QUOTA PERIOD" or "max PERIOD") or v1 (cpu.cfs_quota_us, -1: none,
    and cpu.cfs_period_us); (None, "") without one. `proc` and `fs_root` exist for the tests."""
    best: tuple[float | None, str] = (None, "")
    for version, here, base in _cgroup_dirs(Path(proc), Path(fs_root)):
        d = here
        while True:
            limit = None
            if version == "v2":
                text = _read(d / "cpu.max")
                if text:
                    quota, _, period = text.partition(" ")
                    if quota != "max":
                        try:
                            limit = int(quota) / int(period or 100000)
                        except ValueError:
                            pass
                    where = d / "cpu.max"
            else:
                quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
                try:
                    if quota is not None and period and int(quota) > 0:
                        limit = int(quota) / int(period)
                except ValueError:
                    pass
                where = d / "cpu.cfs_quota_us"
            if limit is not None and limit > 0 and (best[0] is None or limit < best[0]):
                best = (limit, str(where))
            if d == base or d.parent == d:
                break
            d = d.parent
    return best


def usable_cpus(proc: str | Path = "/proc", fs_root: str | Path = "/") -> CPUs:
    """The CPUs this process may use: the affinity mask and the cgroup quota, whichever is smaller."""
    host = os.cpu_count() or 1
    affinity = affinity_count()
    quota, where = cgroup_cpu_limit(proc, fs_root)
    count = affinity if affinity is not None else host
    if quota is not None:
        count = min(count, max(1, math.floor(quota)))
    return CPUs(max(1, count), host, affinity, quota, where)


def switch(environ=None) -> str:
    """ZOO_THREADS: 'auto', 'off', or a positive number (anything else reads as auto)."""
    value = (os.environ if environ is None else environ).get(SWITCH, "auto").strip().lower()
    if value == "off" or (value.isdigit() and int(value) > 0):
        return value
    return "auto"


def quiet_waiting(environ=None) -> None:
    """Waiting OpenMP threads sleep instead of spinning (OMP_WAIT_POLICY=PASSIVE), unless the user set
    the policy or ZOO_THREADS=off. Read once, when OpenMP loads with torch: call it before torch is
    imported (zoo_core/__init__.py does). Processes zoo starts (loaders, torchrun) inherit it."""
    environ = os.environ if environ is None else environ
    if switch(environ) != "off":
        environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@dataclass(frozen=True)
class Plan:
    """Threads for computing cached features (None: nothing to compute) and for training, and why."""

    features: int | None
    train: int | None  # None: leave torch's count alone (the user's choice)
    reason: str

    def describe(self) -> str:
        if self.train is None:
            return f"threads: {self.reason}"
        counts = (f"{self.features} to compute features, {self.train} to train" if self.features is not None
                  and self.features != self.train else f"{self.train}")
        return f"threads: {counts} ({self.reason})"


def plan_threads(cpus: CPUs, *, train_flops: float | None, train_workers: int = 0,
                 feature_flops: float | None = None, feature_workers: int = 0,
                 user_threads: int | None = None, environ=None) -> Plan:
    """The thread counts for a run. `*_flops`: one step's forward pass (the whole batch; None: unknown,
    taken as large); `*_workers`: the data-loading processes running beside it; `user_threads`: a count
    the user set with torch.set_num_threads before the run."""
    environ = os.environ if environ is None else environ
    wanted = switch(environ)
    waiting = f"OMP_WAIT_POLICY={environ['OMP_WAIT_POLICY']}" if environ.get("OMP_WAIT_POLICY") else "spinning waits"
    if wanted == "off":
        return Plan(None, None, f"{SWITCH}=off, torch's defaults ({waiting})")
    if wanted != "auto":
        n = int(wanted)
        return Plan(n if feature_flops is not None else None, n, f"{SWITCH}={n}; {waiting}")
    given = [f"{v}={environ[v]}" for v in USER_VARIABLES if environ.get(v)]
    if given:
        return Plan(None, None, f"{', '.join(given)} set, zoo keeps it; {waiting}")
    if user_threads is not None:
        return Plan(None, None, f"torch.set_num_threads({user_threads}) before the run, zoo keeps it; {waiting}")

    def count(flops: float | None, workers: int) -> tuple[int, str]:
        share = max(1, cpus.count - workers)
        why = f"{workers} loader process{'es' if workers != 1 else ''}" if workers else ""
        if flops is not None and flops < SMALL_STEP_FLOPS and share > 1:
            return 1, f"a step of {flops / 1e6:.1f} MFLOP is too small to share out"
        return share, why

    train, train_why = count(train_flops, train_workers)
    whys = [cpus.describe()]
    features = None
    if feature_flops is not None:
        features, feature_why = count(feature_flops, feature_workers)
        if feature_why and features != train:
            whys.append(f"features: {feature_why}")
    if train_why:
        whys.append(train_why)
    return Plan(features, train, "; ".join(whys + [waiting]))
