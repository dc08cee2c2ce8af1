"""The stack the paper's public code runs on: HuggingFace GPT-2 and torch's AdamW, for benchmarks/bench.py.

Optional (torch and transformers are never minirev dependencies); bench.py skips it, in one line, when
either is missing. Two things are timed against minirev:

  step(sizes, ...)  one training step of a bench.py GPT workload: GPT2LMHeadModel with the paper's code's
                    settings (GPT-2's pre-LN blocks and gelu_new, learned absolute positions, an output
                    layer NOT tied to the input embedding, as that code runs), torch.optim.AdamW(lr=0.01,
                    weight_decay=0.01), the loss on the answer token only, dropout 0 as in bench.py's
                    minirev workloads. HuggingFace draws its own initial weights.
  demo_run(impl)    the demo's run, `python -m minirev.demo reversal` less its figures: 2 layers, width 64,
                    4 heads, dropout 0.1, 100 epochs of batch 64 on the vocab-800 reversal data (seed 1234),
                    every evaluation group scored after every epoch, as the paper's code does; impl
                    "minirev" runs it with run_experiment, "hf" through HuggingFace GPT-2.
"""
import numpy as np


def available():
    """None when torch and transformers import, else the one line that says what is missing."""
    try:
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as e:
        return f"HuggingFace GPT-2 skipped: {e.name} is not installed (pip install torch transformers: benchmark only)"
    return None


def gpt2(vocab_size, max_len, layers, width, heads, dropout, seed=0):
    """GPT2LMHeadModel as the paper's code builds it: untied output layer, GPT-2 defaults otherwise."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging
    logging.set_verbosity_error()
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=vocab_size, n_positions=max_len, n_embd=width, n_layer=layers, n_head=heads,
                        resid_pdrop=dropout, embd_pdrop=dropout, attn_pdrop=dropout, tie_word_embeddings=False)
    return GPT2LMHeadModel(config)


def answer_loss(model, tokens):
    """Mean cross-entropy of the last token, predicted from the position before it (minirev's loss)."""
    import torch.nn.functional as F
    logits = model(tokens).logits                                     # (B, T, V)
    return F.cross_entropy(logits[:, -2], tokens[:, -1])


def step(sizes, vocab_size, batches, device="cpu"):
    """(one training step, its batches as tensors) of a workload of sizes (layers, width, heads)."""
    import torch
    layers, width, heads = sizes
    model = gpt2(vocab_size, batches[0].shape[1], layers, width, heads, 0.0).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    model.train()

    def run(batch):
        opt.zero_grad(set_to_none=True)
        loss = answer_loss(model, batch)
        loss.backward()
        opt.step()
        return loss.item()
    return run, [torch.tensor(b, device=device) for b in batches]


def demo_run(impl):
    """The demo's training and evaluation (no figures); returns the final validation NLL."""
    if impl == "minirev":
        from minirev import RunConfig, run_experiment
        result, _ = run_experiment(RunConfig(experiment="reversal"), out=None)
        return result["final"]["val_nll"]
    import os
    import torch
    from minirev import reversal_data
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    data = reversal_data(800, 1, 1234)
    model = gpt2(data.vocab_size, data.train.shape[1], 2, 64, 4, 0.1, seed=1234)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=0.01)
    train = torch.tensor(data.train)
    groups = {"train": train, **{k: torch.tensor(v) for k, v in data.groups.items()}}
    rng = np.random.default_rng(1234)

    def evaluate():
        model.eval()
        with torch.no_grad():
            scores = {k: answer_loss(model, g).item() for k, g in groups.items()}
        model.train()
        return scores
    evaluate()
    for epoch in range(100):
        order = torch.tensor(rng.permutation(len(train)))
        for start in range(0, len(train), 64):
            opt.zero_grad(set_to_none=True)
            answer_loss(model, train[order[start:start + 64]]).backward()
            opt.step()
        scores = evaluate()
    return scores[data.val_group]
