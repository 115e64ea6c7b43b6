"""wandb.sdk names libraries import (`from wandb.sdk.lib import RunDisabled`)."""
