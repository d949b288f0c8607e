"""The thread decision (zoo_core/base/cpus.py) from faked /proc and cgroup files: affinity, cgroup v1 and v2
quotas (this cgroup's and a parent's), loader processes, small models, and the user's own choice."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zoo_core.base import cpus
from zoo_core.base.cpus import CPUs, cgroup_cpu_limit, plan_threads

V2_MOUNT = "30 25 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw\n"
V1_MOUNT = "31 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct\n"


def fake(tmp_path: Path, mountinfo: str, cgroup: str, files: dict[str, str]) -> tuple[Path, Path]:
    proc, root = tmp_path / "proc", tmp_path / "root"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    for name, text in files.items():
        path = root / name.lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return proc, root


def test_v2_quota_of_this_cgroup(tmp_path):
    proc, root = fake(tmp_path, V2_MOUNT, "0::/docker/abc\n", {
        "/sys/fs/cgroup/cpu.max": "max 100000\n",
        "/sys/fs/cgroup/docker/abc/cpu.max": "150000 100000\n"})
    limit, where = cgroup_cpu_limit(proc, root)
    assert limit == 1.5 and where.endswith("docker/abc/cpu.max")


def test_v2_a_parent_limit_binds(tmp_path):
    proc, root = fake(tmp_path, V2_MOUNT, "0::/kubepods/pod1/c1\n", {
        "/sys/fs/cgroup/kubepods/pod1/cpu.max": "100000 100000\n",
        "/sys/fs/cgroup/kubepods/pod1/c1/cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(proc, root)[0] == 1.0


def test_v2_no_limit(tmp_path):
    proc, root = fake(tmp_path, V2_MOUNT, "0::/user.slice\n", {"/sys/fs/cgroup/user.slice/cpu.max": "max 100000\n"})
    assert cgroup_cpu_limit(proc, root) == (None, "")


def test_v2_inside_a_container_namespace(tmp_path):
    # a container with its own cgroup namespace sees its cgroup as "/" at the mount point
    proc, root = fake(tmp_path, V2_MOUNT, "0::/\n", {"/sys/fs/cgroup/cpu.max": "50000 100000\n"})
    assert cgroup_cpu_limit(proc, root)[0] == 0.5


def test_v1_quota_and_period(tmp_path):
    proc, root = fake(tmp_path, V1_MOUNT, "4:cpu,cpuacct:/job7\n2:memory:/job7\n", {
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "/sys/fs/cgroup/cpu,cpuacct/job7/cpu.cfs_quota_us": "200000\n",
        "/sys/fs/cgroup/cpu,cpuacct/job7/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(proc, root)[0] == 2.0


def test_v1_unlimited(tmp_path):
    proc, root = fake(tmp_path, V1_MOUNT, "4:cpu,cpuacct:/\n", {
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_limit(proc, root)[0] is None


def test_no_cgroup_files_at_all(tmp_path):
    proc, root = fake(tmp_path, "", "", {})
    assert cgroup_cpu_limit(proc, root) == (None, "")


def test_usable_cpus_takes_the_smaller_of_affinity_and_quota(tmp_path, monkeypatch):
    proc, root = fake(tmp_path, V2_MOUNT, "0::/\n", {"/sys/fs/cgroup/cpu.max": "250000 100000\n"})
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    monkeypatch.setattr(cpus, "affinity_count", lambda: 8)
    c = cpus.usable_cpus(proc, root)
    assert (c.count, c.host, c.affinity, c.quota) == (2, 64, 8, 2.5)  # 2.5 CPUs: rounded down, like automaxprocs
    assert "cgroup quota 2.5" in c.describe() and "affinity 8" in c.describe()
    monkeypatch.setattr(cpus, "affinity_count", lambda: 1)
    assert cpus.usable_cpus(proc, root).count == 1
    proc, root = fake(tmp_path / "small", V2_MOUNT, "0::/\n", {"/sys/fs/cgroup/cpu.max": "20000 100000\n"})
    assert cpus.usable_cpus(proc, root).count == 1  # a fifth of a CPU still runs one thread


FOUR = CPUs(4, 4, 4, None)
BIG, SMALL = 5e10, 1.3e8  # one step's forward: EfficientNet-Lite0 on 32 images; cnn2 on 28 px digits, batch 64


def test_plan_large_model_uses_every_usable_cpu_less_the_loaders():
    assert plan_threads(FOUR, train_flops=BIG, environ={}).train == 4
    plan = plan_threads(FOUR, train_flops=BIG, train_workers=2, environ={})
    assert plan.train == 2 and "2 loader processes" in plan.describe()
    assert plan_threads(FOUR, train_flops=BIG, train_workers=9, environ={}).train == 1
    assert plan_threads(FOUR, train_flops=None, environ={}).train == 4  # unknown work counts as large


def test_plan_small_model_gets_one_thread():
    plan = plan_threads(FOUR, train_flops=SMALL, environ={})
    assert plan.train == 1 and "too small" in plan.describe()


def test_plan_features_then_head():
    plan = plan_threads(FOUR, train_flops=SMALL, feature_flops=BIG, feature_workers=1, environ={})
    assert (plan.features, plan.train) == (3, 1)
    assert plan.describe().startswith("threads: 3 to compute features, 1 to train (4 CPUs usable")


def test_plan_within_a_quota():
    one = CPUs(1, 64, 64, 1.0, "/sys/fs/cgroup/cpu.max")
    plan = plan_threads(one, train_flops=BIG, environ={"OMP_WAIT_POLICY": "PASSIVE"})
    assert plan.train == 1 and "cgroup quota 1" in plan.describe() and "OMP_WAIT_POLICY=PASSIVE" in plan.describe()


@pytest.mark.parametrize("environ", [{"OMP_NUM_THREADS": "3"}, {"MKL_NUM_THREADS": "3"}])
def test_the_users_variables_win(environ):
    plan = plan_threads(FOUR, train_flops=SMALL, feature_flops=BIG, environ=environ)
    assert plan.train is None and plan.features is None and "zoo keeps it" in plan.describe()


def test_the_users_set_num_threads_wins():
    plan = plan_threads(FOUR, train_flops=SMALL, user_threads=3, environ={})
    assert plan.train is None and "torch.set_num_threads(3)" in plan.describe()


def test_zoo_threads_switch():
    assert plan_threads(FOUR, train_flops=SMALL, environ={"ZOO_THREADS": "3"}).train == 3
    off = plan_threads(FOUR, train_flops=SMALL, environ={"ZOO_THREADS": "off"})
    assert off.train is None and "ZOO_THREADS=off" in off.describe()
    assert plan_threads(FOUR, train_flops=BIG, environ={"ZOO_THREADS": "many"}).train == 4  # unreadable: auto


def test_quiet_waiting_respects_the_user():
    env: dict[str, str] = {}
    cpus.quiet_waiting(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    env = {"OMP_WAIT_POLICY": "ACTIVE"}
    cpus.quiet_waiting(env)
    assert env["OMP_WAIT_POLICY"] == "ACTIVE"
    env = {"ZOO_THREADS": "off"}
    cpus.quiet_waiting(env)
    assert "OMP_WAIT_POLICY" not in env


def test_importing_zoo_sets_the_policy_before_torch_loads():
    code = ("import os, sys; import zoo_core; assert 'torch' not in sys.modules; "
            "print(os.environ.get('OMP_WAIT_POLICY'))")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "ZOO_THREADS")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
