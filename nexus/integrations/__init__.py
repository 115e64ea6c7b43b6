"""Adapters that report a loop written on someone else's framework, added without changing the loop.

- `nexus.integrations.huggingface.NexusCallback`: a transformers `TrainerCallback`.
- `nexus.integrations.lightning.NexusCallback` + `NexusLogger`: Lightning 2.x.
- `nexus.integrations.tensorboard.SummaryWriter`: TensorBoard's writer, one import changed.

Each module imports its library itself; this package imports nothing, so `import nexus` never pulls
transformers, lightning, tensorboard or torch.
"""
