"""Code written for W&B that a person cannot edit: HF's Trainer with report_to="wandb" and Lightning's
WandbLogger, each training a few steps. Nothing here mentions Nexus: tests run it through
`nexus run -- python wandb_loggers.py hf|lightning`, which makes their own `import wandb` Nexus."""

import sys
from pathlib import Path

import torch

mode = sys.argv[1]
torch.manual_seed(0)
torch.set_num_threads(1)
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
sys.path.insert(0, str(EXAMPLES))


def hf() -> None:
    from hf_trainer import TEXT, Chunks, char_tokenizer
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    tokenizer = char_tokenizer(TEXT)
    ids = tokenizer(TEXT)["input_ids"]
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=2,
            max_position_embeddings=64,
        )
    )
    args = TrainingArguments(
        output_dir="hf-out",
        run_name="hf-wandb",
        max_steps=6,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="wandb",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=Chunks(ids)).train()


def lightning() -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import WandbLogger
    from lightning_module import CHARS, CharLSTM, loader

    logger = WandbLogger(name="pl-wandb", project="drop-in", log_model=False)
    trainer = pl.Trainer(
        max_steps=6,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=logger,
    )
    trainer.fit(CharLSTM(len(CHARS)), loader(), loader())


{"hf": hf, "lightning": lightning}[mode]()
