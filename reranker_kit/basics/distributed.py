"""The few things the scripts need from torch.distributed when launched with torchrun or accelerate.

The Trainer sets up data parallelism itself; these helpers only let every process agree on the one
run folder before the Trainer exists, so that two processes never write two folders.
"""

import os

from reranker_kit.basics.errors import KitError


def world_size() -> int:
    """Processes of a torchrun or accelerate launch (1 when launched plainly)."""
    return max(int(os.environ.get("WORLD_SIZE", "1")), 1)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_on_main(function):
    """Runs `function` on the main process only and returns its result on every process.

    A `KitError` it raises is raised on every process, so no process waits forever for a folder the
    main process refused to create.
    """
    if world_size() <= 1:
        return function()
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        # The Trainer (through accelerate) reuses a process group that already exists.
        dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    payload = [None]
    if is_main_process():
        try:
            payload = [("ok", function())]
        except KitError as error:
            payload = [("error", str(error))]
    dist.broadcast_object_list(payload, src=0)
    status, value = payload[0]
    if status == "error":
        raise KitError(value)
    return value
