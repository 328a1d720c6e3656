#!/usr/bin/env bash
# One node (or one of several) under torchrun: every rank runs the same `chimed-lit fit`, Lightning
# reads the ranks torchrun sets (TorchElasticEnvironment), and only rank 0 writes outputs and W&B.
#
#   NPROC=8 scripts/cluster/torchrun.sh stage=sft experiment=chimed_gpt_13b paths.output_dir=runs/13b
#   # two nodes: on each, NNODES=2 NODE_RANK=<0|1> MASTER_ADDR=<node0> scripts/cluster/torchrun.sh ...
#
# Extra arguments are `chimed-lit fit` overrides. trainer.devices and trainer.num_nodes are set
# from NPROC/NNODES so Lightning agrees with torchrun.
set -euo pipefail
NPROC=${NPROC:-$(python -c 'import torch; print(max(torch.cuda.device_count(), 1))')}
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-127.0.0.1}
MASTER_PORT=${MASTER_PORT:-29500}
exec torchrun --nnodes="$NNODES" --node_rank="$NODE_RANK" --nproc_per_node="$NPROC" \
  --master_addr="$MASTER_ADDR" --master_port="$MASTER_PORT" \
  -m chimed_lit.cli.main fit trainer.devices="$NPROC" trainer.num_nodes="$NNODES" "$@"
