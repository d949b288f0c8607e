"""How long `zoo --help`, `zoo list` and `zoo list --json` take to answer, each in a fresh process, against
`python -c pass` (the interpreter alone) and `python -c "import torch"` measured in the same run.

Also two rows for context: `zoo list` with a cold cache (the first one after installing or upgrading
packages reads timm's and torchvision's model names from their source files, zoo_core/model_names.py),
and `zoo list` with every component's implementation imported at registration, the way plugins
registered before (eager).

    python bench/startup.py [--repeat 7]

Prints a markdown table: the median of the repeats (min-max beside it) and the ratio to `import torch`.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = [str(Path(sys.executable).with_name("zoo"))] if Path(sys.executable).with_name("zoo").exists() \
    else [sys.executable, "-m", "zoo_core.cli"]

# `zoo list` as it was when plugins imported their implementations while registering.
EAGER_LIST = """
import sys
from zoo_core.registry.plugins import get_zoo
from zoo_core.cli import main
for registry in get_zoo().registries.values():
    for component in registry:
        component.factory
sys.argv = ["zoo", "list"]
main()
"""


def timed(command: list[str], env: dict | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True,
                   env={**os.environ, **(env or {})})
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="fresh processes per row (the median is shown)")
    args = parser.parse_args()

    rows = [
        ("`python -c pass`", [sys.executable, "-c", "pass"], None),
        ('`python -c "import torch"`', [sys.executable, "-c", "import torch"], None),
        ("`zoo --help`", [*ZOO, "--help"], None),
        ("`zoo list`", [*ZOO, "list"], None),
        ("`zoo list --json`", [*ZOO, "list", "--json"], None),
        ("`zoo list`, cold cache (the first after an install)", [*ZOO, "list"], "cold"),
        ("`zoo list`, implementations imported at registration (eager)", [sys.executable, "-c", EAGER_LIST], None),
    ]
    timed([*ZOO, "list"])  # warm the disk cache of the files and the family names once
    results = []
    for label, command, mode in rows:
        times = []
        for _ in range(args.repeat):
            env = {"ZOO_CACHE": tempfile.mkdtemp(prefix="zoo-bench-")} if mode == "cold" else None
            times.append(timed(command, env))
        results.append((label, statistics.median(times), min(times), max(times)))
        print(f"  {label}: {statistics.median(times):.3f} s", file=sys.stderr)

    torch_s = results[1][1]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, {args.repeat} fresh "
          f"processes per row, load average {load:.1f} at the end\n")
    print("| command | median (s) | min-max (s) | vs `import torch` |")
    print("|---|--:|--:|--:|")
    for label, median, low, high in results:
        print(f"| {label} | {median:.2f} | {low:.2f}-{high:.2f} | {median / torch_s:.2f}x |")


if __name__ == "__main__":
    main()
