"""wandb.sdk.lib.config_util: the error HF's callback catches (Nexus's config never raises it)."""


class ConfigError(Exception):
    pass
