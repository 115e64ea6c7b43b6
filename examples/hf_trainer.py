"""A Hugging Face Trainer reported to Nexus: the two added lines are marked. Runs on CPU in seconds
with no downloads: a tiny Llama built from a config and a character tokenizer built here.

    python examples/hf_trainer.py [--steps N]     # then watch it in `nexus` (./runs/hf_trainer-<n>)
"""

import argparse

import torch
from tokenizers import Tokenizer, decoders, models
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Trainer, TrainingArguments

from nexus.integrations.huggingface import NexusCallback  # 1

TEXT = "the quick brown fox jumps over the lazy dog. " * 40


def char_tokenizer(text: str) -> PreTrainedTokenizerFast:
    """Character-level: a BPE model with no merges over the text's characters."""
    chars = sorted(set(text))
    vocab = {"<pad>": 0, "<s>": 1, **{c: i + 2 for i, c in enumerate(chars)}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    tok.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="<s>")


class Chunks(torch.utils.data.Dataset):
    def __init__(self, ids: list[int], block: int = 32) -> None:
        self.items = [torch.tensor(ids[i : i + block]) for i in range(0, len(ids) - block, block // 2)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.items[i], "labels": self.items[i]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--out", default="hf-out")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
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
    targs = TrainingArguments(
        output_dir=args.out,
        max_steps=args.steps,
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=Chunks(ids),
        eval_dataset=Chunks(ids[:200]),
        processing_class=tokenizer,
        callbacks=[NexusCallback()],
    )  # 2
    trainer.train()


if __name__ == "__main__":
    main()
