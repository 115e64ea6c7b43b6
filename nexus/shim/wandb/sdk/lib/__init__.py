"""wandb.sdk.lib: `RunDisabled` is Nexus's disabled run."""

from nexus.disabled import DisabledRun as RunDisabled

__all__ = ["RunDisabled"]
