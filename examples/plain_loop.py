"""A plain PyTorch loop (a character LSTM on this very file) reporting to Nexus.

    python examples/plain_loop.py            # then run `nexus` in another terminal: it shows up live

The two lines marked (1) and (2) are the whole change; the lines marked (opt) give the dashboard's
keys something to do: r ramps the LR, c saves, g samples, s stops, p pauses (p works without them).
"""

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

import nexus  # (1)

steps, batch, seq = int(sys.argv[1]) if len(sys.argv) > 1 else 2000, 32, 64
text = Path(__file__).read_text()
vocab = sorted(set(text))
data = torch.tensor([vocab.index(c) for c in text])
torch.manual_seed(0)


class CharLSTM(torch.nn.Module):
    def __init__(self, n: int, hidden: int = 128) -> None:
        super().__init__()
        self.embed, self.head = torch.nn.Embedding(n, 64), torch.nn.Linear(hidden, n)
        self.lstm = torch.nn.LSTM(64, hidden, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.lstm(self.embed(x))[0])


model = CharLSTM(len(vocab))
opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
run = nexus.init(config={"lr": 3e-3, "batch": batch, "model": "char-lstm"}, total_steps=steps)  # (2)
run.watch(opt)  # (opt) the r key ramps this optimizer's LR, composing with the cosine schedule
run.on_checkpoint(lambda: torch.save(model.state_dict(), run.dir / "model.pt") or "model.pt")  # (opt) c


@run.on_sample  # (opt) g: the dialog's prompt, length, temperature and top-k
def sample(prompt: str, tokens: int, temperature: float, top_k: int) -> str:
    x = torch.tensor([[vocab.index(c) for c in prompt if c in vocab] or [0]])
    with torch.no_grad():
        for _ in range(tokens):
            logits = model(x)[0, -1] / max(temperature, 1e-6)
            x = torch.cat([x, torch.multinomial(F.softmax(logits, -1), 1)[None]], 1)
    return "".join(vocab[i] for i in x[0].tolist())


for step in range(1, steps + 1):
    starts = torch.randint(0, len(data) - seq - 1, (batch,))
    x, y = (torch.stack([data[s + o : s + o + seq] for s in starts]) for o in (0, 1))
    loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
    opt.zero_grad()
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    run.log(
        {
            "loss": loss,
            "grad_norm": gnorm,
            "tokens": step * batch * seq,
            "lstm/hidden_norm": model.lstm.weight_hh_l0.norm(),
        }
    )  # tensors: never synced here
    run.step_end()  # (opt) commands act here; without it they act inside log()
    if run.should_stop:  # (opt) the s key
        break
run.finish()
