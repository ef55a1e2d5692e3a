"""lightdet.threads: a container's CPU quota read and turned into a thread count before torch."""

import sys

from lightdet import threads


def test_quota_read_from_cgroup_v2_and_v1(tmp_path):
    v2 = tmp_path / "cpu.max"
    v1 = (tmp_path / "quota", tmp_path / "period")
    v2.write_text("250000 100000\n")
    assert threads.cgroup_quota(v2, v1) == 2.5
    v2.write_text("max 100000\n")
    assert threads.cgroup_quota(v2, v1) is None
    v2.unlink()
    v1[0].write_text("150000\n")
    v1[1].write_text("100000\n")
    assert threads.cgroup_quota(v2, v1) == 1.5
    v1[0].write_text("-1\n")
    assert threads.cgroup_quota(v2, v1) is None
    v1[0].unlink()
    assert threads.cgroup_quota(v2, v1) is None


def test_a_quota_tighter_than_the_mask_sets_the_count_before_torch(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")  # as in a fresh `python -m lightdet.train`
    monkeypatch.setattr(threads, "affinity_cores", lambda: 64)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 2.5)
    env = {}
    assert threads.apply(env) == {"OMP_NUM_THREADS": "2"}
    assert env == {"OMP_NUM_THREADS": "2"}
    chosen = {"OMP_NUM_THREADS": "7"}  # the user's (or joblib's) count is kept
    assert threads.apply(chosen) == {} and chosen == {"OMP_NUM_THREADS": "7"}
    monkeypatch.setattr(threads, "cgroup_quota", lambda: None)
    assert threads.apply({}) == {}


def test_nothing_is_set_once_torch_is_loaded(monkeypatch):
    import torch  # noqa: F401

    monkeypatch.setattr(threads, "affinity_cores", lambda: 64)
    monkeypatch.setattr(threads, "cgroup_quota", lambda: 2.0)
    env = {}
    assert threads.apply(env) == {} and env == {}
