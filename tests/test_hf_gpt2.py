"""minirev's GPT is GPT-2: the same weights in HuggingFace's GPT2LMHeadModel (the model the paper's public code
builds on) give the same logits and the same gradient of every parameter, in float64.

Optional: it needs torch and transformers (pip install -e ".[hf]"), and is skipped without them. Importing
them alone takes seconds of CPU, so it is marked slow, out of the default suite.
Run it with: pytest -m slow tests/test_hf_gpt2.py

HuggingFace's GPT-2 always adds a learned position table; minirev's "none" (no positions) is compared
with that table set to 0, and its gradient (which minirev has no parameter for) is left out.
Rotary positions are not part of GPT-2 and are not compared here.
"""
import numpy as np
import pytest

from minirev.gpt import GPT

pytestmark = [pytest.mark.slow, pytest.mark.gpt]
torch = transformers = None          # imported by the fixture below, so that collecting this file costs nothing


@pytest.fixture(autouse=True, scope="module")
def hf_libraries():
    global torch, transformers
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
BOUND = 1e-10
V, LAYERS, WIDTH, HEADS, T, L = 13, 2, 16, 4, 5, 2


def minirev_model(tied, pos, loss_whole_sequence=False, seed=0):
    """A float64 minirev GPT with O(1) weights (GPT-2's 0.02 init makes attention nearly uniform, so a
    wrong attention would hardly show), no dropout."""
    model = GPT(V, layers=LAYERS, width=WIDTH, heads=HEADS, pos=pos, max_len=T, dropout=0.0, entity_len=L, seed=seed,
                tied=tied, loss_whole_sequence=loss_whole_sequence, dtype=np.float64)
    rng = np.random.default_rng(seed)
    model.params = {k: rng.normal(0, 0.5, v.shape) + k.endswith(".g") for k, v in model.params.items()}
    return model


def hf_twin(model, tied, pos):
    """GPT2LMHeadModel with minirev's weights, copied by name: {HF parameter: minirev parameter}."""
    config = transformers.GPT2Config(vocab_size=V, n_positions=T, n_embd=WIDTH, n_layer=LAYERS, n_head=HEADS,
                                     activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                                     layer_norm_epsilon=1e-5, tie_word_embeddings=tied,
                                     bos_token_id=None, eos_token_id=None)
    config._attn_implementation = "eager"
    hf = transformers.GPT2LMHeadModel(config).double().eval()
    names = {"transformer.wte.weight": "wte", "transformer.ln_f.weight": "lnf.g", "transformer.ln_f.bias": "lnf.b"}
    if pos == "absolute":
        names["transformer.wpe.weight"] = "wpe"
    if not tied:
        names["lm_head.weight"] = "w_out"
    for l in range(LAYERS):
        for theirs, ours in (("ln_1.weight", "ln1.g"), ("ln_1.bias", "ln1.b"), ("ln_2.weight", "ln2.g"),
                             ("ln_2.bias", "ln2.b"), ("attn.c_attn.weight", "attn.w_qkv"),
                             ("attn.c_attn.bias", "attn.b_qkv"), ("attn.c_proj.weight", "attn.w_proj"),
                             ("attn.c_proj.bias", "attn.b_proj"), ("mlp.c_fc.weight", "mlp.w_fc"),
                             ("mlp.c_fc.bias", "mlp.b_fc"), ("mlp.c_proj.weight", "mlp.w_proj"),
                             ("mlp.c_proj.bias", "mlp.b_proj")):
            names[f"transformer.h.{l}.{theirs}"] = f"h{l}.{ours}"    # Conv1D stores (in, out), as minirev does
    params = dict(hf.named_parameters())
    with torch.no_grad():
        for theirs, ours in names.items():
            params[theirs].copy_(torch.from_numpy(np.asarray(model.params[ours])))
        if pos == "none":
            params["transformer.wpe.weight"].zero_()
    assert (hf.lm_head.weight is hf.transformer.wte.weight) == tied, "HF's tying is not what this case compares"
    return hf, names


CASES = [(tied, pos) for tied in (False, True) for pos in ("absolute", "none")]


@pytest.mark.parametrize("tied, pos", CASES, ids=[f"{'tied' if t else 'untied'}-{p}" for t, p in CASES])
def test_minirev_gpt_equals_huggingface_gpt2(tied, pos):
    model = minirev_model(tied, pos)
    hf, names = hf_twin(model, tied, pos)
    tokens = np.random.default_rng(1).integers(0, V, (6, T))
    ours, _ = model.forward_logits(model.params, tokens, np)                             # (B, T, V)
    logits = hf(torch.from_numpy(tokens)).logits                                         # (B, T, V)
    diff = np.abs(ours - logits.detach().numpy()).max()
    assert diff < BOUND, f"forward: the logits differ from GPT2LMHeadModel's by {diff:.2e} (bound {BOUND:g})"

    # the loss minirev trains: cross-entropy of the L answer tokens, each from the positions before it
    loss, grads = model.loss_and_grads(tokens)
    answer = logits[:, T - L - 1:T - 1].reshape(-1, V)
    hf_loss = torch.nn.functional.cross_entropy(answer, torch.from_numpy(tokens[:, T - L:]).reshape(-1))
    hf_loss.backward()
    assert abs(loss - hf_loss.item()) < BOUND, f"the answer loss differs: {loss} vs HF {hf_loss.item()}"
    params = dict(hf.named_parameters())
    worst = max(np.abs(np.asarray(grads[ours]) - params[theirs].grad.numpy()).max() for theirs, ours in names.items())
    assert worst < BOUND, f"backward: a gradient differs from HF's autograd by {worst:.2e} (bound {BOUND:g})"
    assert set(names.values()) == set(model.params), "every minirev parameter should have been compared"


def test_whole_sequence_loss_is_huggingface_labels_loss():
    """--loss-whole-sequence is GPT2LMHeadModel's own loss with labels = the input (the paper's code's option):
    the mean cross-entropy of every token from the ones before it. (HF computes that loss in float32 whatever
    the model's precision, so it is compared to 1e-6, and the float64 gradients on the same loss in float64.)"""
    model = minirev_model(False, "absolute", loss_whole_sequence=True)
    hf, names = hf_twin(model, False, "absolute")
    tokens = np.random.default_rng(2).integers(0, V, (6, T))
    loss, grads = model.loss_and_grads(tokens)
    out = hf(torch.from_numpy(tokens), labels=torch.from_numpy(tokens))
    assert abs(loss - out.loss.item()) < 1e-6, f"whole-sequence loss {loss} vs HF's labels loss {out.loss.item()}"
    hf_loss = torch.nn.functional.cross_entropy(out.logits[:, :-1].reshape(-1, V),
                                                torch.from_numpy(tokens[:, 1:]).reshape(-1))
    hf_loss.backward()
    assert abs(loss - hf_loss.item()) < BOUND, f"whole-sequence loss {loss} vs HF's in float64 {hf_loss.item()}"
    params = dict(hf.named_parameters())
    worst = max(np.abs(np.asarray(grads[ours]) - params[theirs].grad.numpy()).max() for theirs, ours in names.items())
    assert worst < BOUND, f"the whole-sequence gradients differ from HF's by {worst:.2e}"
