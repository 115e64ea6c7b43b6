"""One run steered across every process of a torch.distributed job: rank 0 decides, every rank acts.

Only rank 0 reports: it owns the run folder and the control socket. What the keys do, though, has to
happen on every rank at the same step, or the job hangs or drifts: a stop on rank 0 alone leaves the
others waiting in their next all-reduce; a Trainer's save and eval contain collectives (eval gathers
across ranks); an LR ramp on rank 0 alone applies another LR to the same averaged gradients and the
replicas silently diverge. So at each step end every rank calls `RankSteering.step_end()`:

- rank 0 runs `run.step_end()` (queued commands, handlers, pause) as a single process does, then
  broadcasts one `Decision`: stop, save, evaluate, and a ramp (sequence number, target, steps, start
  LR). Every rank, rank 0 included, hands the decision to the adapter's `act` and starts the ramp on
  its own `LRControl` from rank 0's start LR, so the LR is the same number everywhere, from the same
  optimizer step.
- a handler that must run on every rank *now* (Lightning's `save_checkpoint` is a collective) calls
  `share(save=True)`: a decision with `more` set; the other ranks act on it and wait for the next.
- while paused, rank 0 sends an empty `more` decision about once a second (through `Run._idle`): the
  others wait in a broadcast that completes every second, so a pause of hours never meets the process
  group's timeout, and a checkpoint or eval asked for during a pause happens on every rank.

The decision is one float64 tensor of fixed size (no pickled objects: one small broadcast per step).
It travels over a gloo group even when training runs on NCCL: reading a CUDA tensor on the other
ranks would wait for the step's kernels every step, a CPU tensor costs the GPUs nothing. Under gloo
the default group carries it. A single process (no process group, or a world of one) does no
collective at all: `step_end()` is `run.step_end()`, then `act`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nexus.lr import LRControl

if TYPE_CHECKING:
    from nexus.reporter import Run

MORE, STOP, SAVE, EVALUATE, SEQ, TARGET, STEPS, START = range(8)
SIZE = 8
"""The decision tensor's fields, in order."""

_group_cache: dict[int, Any] = {}


@dataclass(frozen=True)
class Decision:
    """What every rank does after this step end (or, with `more`, right now, inside it)."""

    stop: bool = False
    save: bool = False
    evaluate: bool = False
    more: bool = False
    """Rank 0 is still inside its step end (paused, or a handler acting now): another decision follows."""


def rank_and_world() -> tuple[int, int]:
    """This process's rank and the world size of an initialized process group, else (0, 1)."""
    try:
        import torch.distributed as dist
    except ImportError:
        return 0, 1
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


class RankSteering:
    """Rank 0's steering shared with every rank. Build it on every rank at the same point (it may create
    a process group): `run` is the reported run on rank 0 (None elsewhere), `optimizer` the torch
    optimizer whose LR a ramp changes (None: no ramps), `act(decision)` what the adapter does with a
    decision (set its framework's stop/save/eval flags), on every rank. `group`: a gloo group for the
    decisions (default: the default group under gloo, else one made for them)."""

    def __init__(
        self, run: Run | None, optimizer: Any, act: Callable[[Decision], None], group: Any = None
    ) -> None:
        self.run = run
        self._act = act
        self.rank, self.world = rank_and_world()
        self.active = self.world > 1
        """Several processes: step_end() is a collective every rank must make, once per step."""
        self._lr: LRControl | None = None
        self._own_lr = False
        self._sent = self._applied = 0  # ramp sequence numbers
        self._inside = False
        self._queued = Decision()
        if run is not None:
            run._loop_reads_stop = True  # the adapter's act() ends the fit on stop: no KeyboardInterrupt
        if not self.active:
            return
        if self.rank == 0:
            if run is not None:
                run._steers = True  # commands are acted on in step_end() only, never inside a log()
                self._lr = run._lr
                if self._lr is not None:
                    self._lr.held = True
        elif optimizer is not None:
            with contextlib.suppress(ValueError):  # no float LRs: rank 0 refuses ramps too
                self._lr = LRControl(optimizer)
                self._own_lr = True
        if group is not None:
            import torch

            self._group, self._device = group, torch.device("cpu")
        else:
            self._group, self._device = _control_group()

    # -- every rank, once per step -----------------------------------------------------------------

    def step_end(self) -> Decision:
        """The step end of every rank: rank 0 acts on its commands (a pause holds here), then every
        rank acts on what it decided. Returns the decision (`stop`: the loop should end)."""
        run = self.run if self.run is not None and not self.run._ended else None  # None: nothing live
        if not self.active:
            if run is None:
                return Decision()
            run.step_end()
            decision = Decision(stop=run.should_stop)
            if decision.stop:
                self._act(decision)
            return decision
        if self.rank != 0:
            while True:
                decision = self._receive()
                if not decision.more:
                    return decision
        if run is not None:
            self._inside = True
            run._idle = self._tick
            try:
                run.step_end()
            finally:
                self._inside = False
                run._idle = None
        queued, self._queued = self._queued, Decision()
        return self._send(
            Decision(stop=run is not None and run.should_stop, save=queued.save, evaluate=queued.evaluate)
        )

    def share(self, save: bool = False, evaluate: bool = False) -> None:
        """Rank 0's handlers: have every rank save / evaluate. Inside step_end() it happens at once on every
        rank (the decision is sent now); outside, it goes with the next step end's decision."""
        wanted = Decision(save=save, evaluate=evaluate)
        if not self.active:
            self._act(wanted)
        elif self._inside:
            self._send(Decision(save=save, evaluate=evaluate, more=True))
        else:
            q = self._queued
            self._queued = Decision(save=q.save or save, evaluate=q.evaluate or evaluate)

    def close(self) -> None:
        """Remove this rank's LR hooks (rank 0's belong to its run, which closes them)."""
        if self._lr is not None:
            if self._own_lr:
                self._lr.close()
            self._lr.held = False
        self._lr = None

    # -- plumbing --------------------------------------------------------------------------------

    def _tick(self) -> None:
        """Rank 0, paused: keep the others' broadcast short (and hand them a ramp asked for meanwhile)."""
        self._send(Decision(more=True))

    def _send(self, decision: Decision) -> Decision:
        import torch
        import torch.distributed as dist

        values = [0.0] * SIZE
        values[MORE], values[STOP] = float(decision.more), float(decision.stop)
        values[SAVE], values[EVALUATE] = float(decision.save), float(decision.evaluate)
        lr = self._lr
        ramp = lr.take_request() if lr is not None else None
        if lr is not None and ramp is not None:
            self._sent += 1
            values[SEQ], values[TARGET], values[STEPS] = float(self._sent), ramp[0], float(ramp[1])
            values[START] = lr.current()
        tensor = torch.tensor(values, dtype=torch.float64, device=self._device)
        dist.broadcast(tensor, src=0, group=self._group)
        return self._apply(values)

    def _receive(self) -> Decision:
        import torch
        import torch.distributed as dist

        tensor = torch.zeros(SIZE, dtype=torch.float64, device=self._device)
        dist.broadcast(tensor, src=0, group=self._group)
        return self._apply(tensor.tolist())

    def _apply(self, values: list[float]) -> Decision:
        seq = int(values[SEQ])
        if seq > self._applied:
            self._applied = seq
            if self._lr is not None:
                self._lr.begin(values[TARGET], int(values[STEPS]), values[START])
        decision = Decision(
            stop=values[STOP] > 0, save=values[SAVE] > 0, evaluate=values[EVALUATE] > 0, more=values[MORE] > 0
        )
        if decision.stop or decision.save or decision.evaluate:
            self._act(decision)
        return decision


def _control_group() -> tuple[Any, Any]:
    """The group and device the decisions travel on: the default group when it speaks gloo (CPU
    tensors), else one gloo group made once per process (all ranks create it together), else (no
    gloo in this torch) the default group on this rank's CUDA device."""
    import torch
    import torch.distributed as dist

    backend = str(dist.get_backend()).lower()
    if "gloo" in backend:
        return None, torch.device("cpu")
    key = id(dist.group.WORLD)  # a process group torn down and made again gets a gloo group of its own
    if key not in _group_cache:
        try:
            _group_cache[key] = dist.new_group(backend="gloo")
        except (RuntimeError, ValueError):
            _group_cache[key] = None
    if _group_cache[key] is not None:
        return _group_cache[key], torch.device("cpu")
    if torch.cuda.is_available():
        return None, torch.device("cuda", torch.cuda.current_device())
    return None, torch.device("cpu")
