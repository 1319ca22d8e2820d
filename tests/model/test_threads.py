"""The training processes' CPU threads never outnumber the cores left to them."""

import torch

from prn.model.training.threads import cpu_threads, limit_cpu_threads, usable_cores


def test_threads_are_the_cores_left_after_the_loader_workers():
    assert cpu_threads(0, cores=2) == 2
    assert cpu_threads(1, cores=2) == 1
    assert cpu_threads(4, cores=2) == 1            # at least one
    assert cpu_threads(1, processes_per_machine=2, cores=16) == 7
    assert cpu_threads(0, processes_per_machine=4, cores=2) == 1


def test_limit_applies_to_torch(monkeypatch):
    before = torch.get_num_threads()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    try:
        assert limit_cpu_threads(0) == usable_cores() == torch.get_num_threads()
        monkeypatch.setenv("LOCAL_WORLD_SIZE", str(usable_cores()))
        assert limit_cpu_threads(0) == 1 == torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
