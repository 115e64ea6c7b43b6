"""`run.watch(model, log="gradients"|"parameters"|"all", log_freq=N)`: per-layer norms, as wandb.

Every `log_freq` backward passes a gradient hook on each parameter takes the gradient's norm (a tensor
op queued on the device: no sync on the training thread); at the step's commit the parameter norms are
taken the same way, and all of them join that step's values as `grad_norm/<layer>` and
`param_norm/<layer>`, read later in one batch by the writer thread. With log="all" (or "gradients" /
"parameters" and `histograms=True`) the distributions are kept too, as histogram records
(`gradients/<layer>`, `parameters/<layer>`), which do read the device, every log_freq steps only.
"""

from __future__ import annotations

from typing import Any

WANTS = {"gradients": (True, False), "parameters": (False, True), "all": (True, True), None: (False, False)}


class ModelWatch:
    def __init__(
        self, model: Any, log: str | None = "gradients", log_freq: int = 1000, log_graph: bool = False
    ) -> None:
        self.model = model
        self.grads, self.params = WANTS.get(log, (True, False))
        self.histograms = log == "all"
        self.every = max(1, int(log_freq or 1))
        self.backwards = 0
        self.due = False
        self.norms: dict[str, Any] = {}
        self.grad_values: dict[str, Any] = {}
        self.handles: list[Any] = []
        self.seen: set[str] = set()
        """Parameters whose gradient this backward pass has produced (a repeat means a new pass)."""
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        for name, p in self.named:
            self.handles.append(p.register_hook(self._grad_hook(name)))

    def _grad_hook(self, name: str) -> Any:
        def hook(grad: Any) -> None:
            if not self.seen or name in self.seen:  # the first gradient of a backward pass
                self.seen.clear()
                self.backwards += 1
                self.due = self.due or (self.backwards - 1) % self.every == 0
            self.seen.add(name)
            if self.due and self.grads:
                g = grad.detach()
                self.norms[f"grad_norm/{name}"] = g.norm()
                if self.histograms:
                    self.grad_values[name] = g

        return hook

    def take(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """At a commit: (norm values for this step, {histogram key: tensor}) when due, else empty."""
        if not self.due:
            return {}, {}
        self.due = False
        values, hists = self.norms, {f"gradients/{n}": g for n, g in self.grad_values.items()}
        self.norms, self.grad_values = {}, {}
        if self.params:
            for name, p in self.named:
                values[f"param_norm/{name}"] = p.detach().norm()
                if self.histograms:
                    hists[f"parameters/{name}"] = p.detach()
        return values, hists

    def close(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []
