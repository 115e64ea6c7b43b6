"""An unchanged wandb-style script (`import nexus as wandb`; init, log, nothing else: no step_end, no
should_stop, no finish), for the stop, SIGHUP and tok_s tests. Run as a subprocess.

argv[1]: plain (train until ended from outside), own-sigint (the script handles SIGINT itself: it
sets a flag, ends its loop and says so in `handled-sigint`). Every step appends its number to
`logged` beside the run folder, so a test can see how far the loop got after a stop.
"""

import signal
import sys
import time
from pathlib import Path

import nexus as wandb

mode = sys.argv[1]
stop = False
if mode == "own-sigint":

    def on_sigint(signum, frame):  # noqa: ANN001, ANN201 - a script's own handler, as people write them
        global stop
        stop = True

    signal.signal(signal.SIGINT, on_sigint)

run = wandb.init(config={"lr": 0.01, "model": "none"})
progress = Path(str(run.dir) + ".logged")
for step in range(1, 10**7):
    wandb.log({"loss": 1.0 / step, "tokens": step * 512})
    with progress.open("a") as f:
        f.write(f"{step}\n")
    if stop:
        (Path(str(run.dir) + ".handled-sigint")).write_text(str(step))
        break
    time.sleep(0.01)
