"""A Lightning fit reported to Nexus: the two added lines are marked. Runs on CPU in seconds: a
character-level LSTM on a built-in text, no downloads.

    python examples/lightning_module.py [--steps N]     # then watch it in `nexus`
"""

import argparse

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, TensorDataset

from nexus.integrations.lightning import NexusCallback, NexusLogger  # 1

TEXT = "the quick brown fox jumps over the lazy dog. " * 40
CHARS = sorted(set(TEXT))


class CharLSTM(pl.LightningModule):
    def __init__(self, vocab: int, hidden: int = 32, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.lstm = torch.nn.LSTM(hidden, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(x))[0])

    def _loss(self, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self(x).flatten(0, 1), y.flatten())

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss)
        self.log("lr", self.trainer.optimizers[0].param_groups[0]["lr"])
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=self.hparams.lr)


def sample(module: CharLSTM, prompt: str, tokens: int, temperature: float, top_k: int) -> str:
    """The `g` key: continue the prompt a character at a time."""
    ids = [CHARS.index(c) for c in prompt if c in CHARS] or [0]
    for _ in range(tokens):
        logits = module(torch.tensor([ids]))[0, -1]
        ids.append(
            int(logits.argmax())
            if temperature == 0
            else int(torch.multinomial(torch.softmax(logits / temperature, -1), 1))
        )
    return prompt + "".join(CHARS[i] for i in ids[len(prompt) :])


def loader(block: int = 32) -> DataLoader:
    ids = torch.tensor([CHARS.index(c) for c in TEXT])
    starts = range(0, len(ids) - block - 1, block // 2)
    x = torch.stack([ids[i : i + block] for i in starts])
    y = torch.stack([ids[i + 1 : i + block + 1] for i in starts])
    return DataLoader(TensorDataset(x, y), batch_size=8, shuffle=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    trainer = pl.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_checkpointing=False,
        val_check_interval=50,
        check_val_every_n_epoch=None,
        limit_val_batches=4,
        logger=NexusLogger(),
        callbacks=[NexusCallback(sample=sample)],
    )  # 2
    trainer.fit(CharLSTM(len(CHARS)), loader(), loader())


if __name__ == "__main__":
    main()
