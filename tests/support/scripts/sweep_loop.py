"""A script for command sweeps: `sweep_loop.py LR` trains nothing, but reports five steps of a loss
and a val loss that depend on LR as a real sweep's would (lower for LR nearer 0.01), then finishes."""

import sys

import nexus

lr = float(sys.argv[1])
run = nexus.init(config={"lr": lr}, total_steps=5)
for step in range(1, 6):
    run.log({"train/loss": 2.0 / step + abs(lr - 0.01) * 10})
    run.step_end()
run.log({"val/loss": 1.0 + abs(lr - 0.01) * 10})
run.finish()
