"""One curriculum node trained by several processes under torchrun (the Dagster path).

    train = node_runner(nproc_per_node=2)       # train_node itself when 1
    result = train(node, pairs, parents, settings, out_dir, tier=1, split=split)

`launch_node` pickles `train_node`'s arguments into a temporary directory beside the
node's runs and runs

    python -m torch.distributed.run --standalone --nproc_per_node=N -m training.node_worker ARGS

Every rank calls `train_node` on them (data-parallel, see `training.distributed`); rank 0
writes the checkpoints, result.json, latest.json and the node's result next to ARGS,
which the launcher returns. `--standalone` picks a free port, so several nodes can be
launched side by side on one machine.
"""

from __future__ import annotations

import logging
import os
import pickle
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch

from canvas.sources import Source
from training import distributed
from training.dag import DAGNode
from training.dag_trainer import NodeResult, train_node
from training.settings import CurriculumSettings

RESULT = "result.json"


def node_runner(nproc_per_node: int = 1, threads: int = 1) -> Callable[..., NodeResult]:
    """`train_node` for one process, else `launch_node` over `nproc_per_node` processes."""
    if nproc_per_node < 1:
        raise ValueError(f"nproc_per_node must be >= 1, got {nproc_per_node}")
    if nproc_per_node == 1:
        return train_node
    return partial(launch_node, nproc_per_node=nproc_per_node, threads=threads)


def launch_node(
    node: DAGNode,
    pairs: Sequence[Source],
    parents: Sequence[NodeResult],
    settings: CurriculumSettings,
    out_dir: str | Path,
    *,
    nproc_per_node: int,
    threads: int = 1,
    **options: Any,
) -> NodeResult:
    """`train_node(node, pairs, parents, settings, out_dir, **options)` run by
    `nproc_per_node` torchrun processes of `threads` torch threads each; its result."""
    node_dir = Path(out_dir) / node.name
    node_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".launch-", dir=node_dir) as tmp:
        args = Path(tmp) / "args.pkl"
        arguments = {
            **options,
            "node": node,
            "pairs": pairs,
            "parents": parents,
            "settings": settings,
            "out_dir": out_dir,
        }
        args.write_bytes(pickle.dumps({"threads": threads, "arguments": arguments}))
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc_per_node}",
            "-m",
            "training.node_worker",
            str(args),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode:
            tail = "\n".join(done.stderr.splitlines()[-30:])
            raise RuntimeError(
                f"node {node.name}: torchrun exited with {done.returncode}; its stderr ends:\n"
                f"{tail}"
            )
        return NodeResult.load(Path(tmp) / RESULT)


def main(args: Path) -> None:
    """A rank of `launch_node`: train the pickled node; rank 0 writes its result."""
    spec = pickle.loads(args.read_bytes())
    torch.set_num_threads(spec["threads"])
    arguments = spec["arguments"]
    ranks = distributed.init_from_env(arguments["settings"].device)
    logging.basicConfig(
        level=logging.INFO if ranks.is_main else logging.WARNING,
        format=f"%(asctime)s rank {ranks.rank} %(message)s",
    )
    try:
        train_node(**arguments).save(args.parent / RESULT)
    finally:
        distributed.cleanup()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
