"""A plain PyTorch loop reporting to Nexus, for tests/test_reporter_process.py (run as a subprocess).

argv[1] is the mode: steer (train until a stop command), fail (raise after a few steps), forever
(train until a signal), wandb (only `import nexus as wandb` calls, no step_end, no finish()).
The run folder comes from NEXUS_RUN_DIR, as a launcher would set it.
"""

import sys
import time
from pathlib import Path

import torch

import nexus

mode = sys.argv[1]
if mode == "wandb":
    import nexus as wandb

    wandb.init(config={"lr": 0.05, "model": "linear"})
    for step in range(1, 31):
        wandb.log({"train/loss": 1.0 / step, "val/acc": step / 30.0})
    sys.exit(0)  # no finish(): the atexit hook records the end

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # so the LR SGD applied can be read back from the weights exactly
torch.set_num_threads(1)
model = torch.nn.Linear(8, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05)
sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)
run = nexus.init(config={"lr": 0.05, "batch": 16, "model": "linear"}, total_steps=100_000)
run.watch(opt)


@run.on_checkpoint
def save() -> str:
    path = run.dir / f"ckpt-{run.step}.pt"
    torch.save(model.state_dict(), path)
    return str(path)


run.on_eval(lambda: {"loss": 0.5, "acc": 0.75})
run.on_sample(lambda prompt, tokens, temperature, top_k: f"{prompt}|{tokens}|{temperature}|{top_k}")

for step in range(1, 100_001):
    x = torch.randn(16, 8)
    loss = ((model(x) - 1.0) ** 2).mean()
    opt.zero_grad()
    loss.backward()
    w0, g0 = model.bias.detach().clone(), model.bias.grad.detach().clone()
    opt.step()
    sched.step()
    used = float((w0 - model.bias.detach()) / g0) if float(g0) != 0 else float("nan")
    run.log({"loss": loss, "used_lr": used, "train/tokens_seen": step * 16})
    run.step_end()
    if mode == "fail" and step == 5:
        raise ValueError("bad batch shape at step 5")
    if run.should_stop:
        Path(run.dir / "loop-ended").write_text(str(step))
        break
    time.sleep(0.005)
run.finish()
