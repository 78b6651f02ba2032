"""MLX-CUDA's kernel cache goes to temper's cache folder (core/accel/kernel_cache.py), never over a user's
choice, and only for a CUDA build."""

from __future__ import annotations

from temper.core.accel import kernel_cache


def test_a_cuda_build_keeps_its_kernels_in_temper_cache(tmp_path):
    env = {"XDG_CACHE_HOME": str(tmp_path)}
    got = kernel_cache.persist(env, cuda=True)
    assert got is not None and got.is_dir()
    assert env[kernel_cache.ENV] == str(got)
    assert got.parent == tmp_path / "temper" / "mlx-cuda-kernels"


def test_the_users_folder_and_other_builds_are_left_alone(tmp_path):
    mine = {"XDG_CACHE_HOME": str(tmp_path), kernel_cache.ENV: "/somewhere/mine"}
    assert kernel_cache.persist(mine, cuda=True) is None and mine[kernel_cache.ENV] == "/somewhere/mine"
    cpu = {"XDG_CACHE_HOME": str(tmp_path)}
    assert kernel_cache.persist(cpu, cuda=False) is None and kernel_cache.ENV not in cpu


def test_an_unwritable_cache_leaves_mlx_default(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = {"XDG_CACHE_HOME": str(blocker)}
    assert kernel_cache.persist(env, cuda=True) is None and kernel_cache.ENV not in env


def test_the_engine_sets_it_as_it_starts(monkeypatch):
    calls = []
    monkeypatch.setattr(kernel_cache, "persist", lambda: calls.append(1))
    from temper.core.engine.thread import Engine

    engine = Engine(name="kernel-cache-test")
    engine.shutdown(5.0)
    assert calls == [1]
