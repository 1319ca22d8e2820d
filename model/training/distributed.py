"""One training process, or one per GPU / CPU slot under torchrun (DDP over NCCL or gloo)."""

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes; rank 0 leads (validates, logs, saves)."""

    rank: int
    world: int
    device: torch.device

    @property
    def lead(self) -> bool:
        return self.rank == 0

    def wrap(self, network) -> torch.nn.Module:
        """The network as the processes train it: under DistributedDataParallel when there are several."""
        if self.world == 1:
            return network
        return torch.nn.parallel.DistributedDataParallel(
            network, device_ids=[self.device.index] if self.device.index is not None else None)

    def agreed(self, code: int) -> int:
        """Rank 0's `code` on every process (a collective call under DDP): all stop at the same step.

        Rank 0's clock and the stop signals it received decide for all, as
        each process may see them a little apart.
        """
        if self.world == 1:
            return code
        value = torch.tensor([code], dtype=torch.int64, device=self.device)
        torch.distributed.broadcast(value, src=0)
        return int(value.item())

    def barrier(self):
        if self.world > 1:
            torch.distributed.barrier()

    def finish(self):
        if self.world > 1:
            torch.distributed.destroy_process_group()


def start_processes() -> Processes:
    """This process under torchrun's RANK / WORLD_SIZE / LOCAL_RANK, or the only one; its GPU when there are GPUs."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world > 1:
        torch.distributed.init_process_group("nccl" if cuda else "gloo")
    return Processes(rank, world, device)
