"""One typed run configuration, read by every part of a run.

    cfg = RunConfig(layers=1, width=32, epochs=50)       # defaults for the rest
    result, runs = run_experiment(cfg)

The command line builds its options from these fields (their defaults and
help texts), checkpoints store ``cfg.to_dict()`` and compare the fields that
define the run, and ``--paper`` is :func:`paper_config`. A wrong value raises
the package's one-line :class:`~minirev.errors.UsageError` in ``validate``.
"""
import math
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

from .backend import BACKENDS
from .errors import UsageError
from .machinery.parallel import cores

EXPERIMENTS = ("reversal", "chain", "incontext")
POS = ("none", "absolute", "rotary")
DTYPES = ("float32", "float64")
# per experiment: what runs in well under a minute on 2 cores
DEFAULT_EPOCHS = {"reversal": 100, "chain": 80, "incontext": 60}


def option(default, help, identity=True, **cli):
    """A field with its command-line help and checks.

    identity=False: a resumed run may change it. cli may hold minimum (numbers),
    maximum (whole numbers), strict (a number must be > minimum), choices (a tuple, or a function giving one),
    metavar, and command_line=False for a field the command line sets itself.
    """
    return field(default=default, metadata=dict(help=help, identity=identity, **cli))


@dataclass
class RunConfig:
    experiment: str = option("reversal", "which experiment", choices=EXPERIMENTS, command_line=False)
    model: str = option("gpt", "which model (default: %(default)s)", choices=lambda: tuple(model_registry()))
    layers: int = option(2, "transformer blocks (default: %(default)s)", minimum=1)
    width: int = option(64, "model width; the embedding dimension d for the bilinear model (default: %(default)s)",
                        minimum=1)
    heads: int = option(4, "attention heads (default: %(default)s)", minimum=1)
    pos: str = option("absolute", "positional encoding (default: %(default)s)", choices=POS)
    dropout: float = option(0.1, "dropout rate in training, in [0, 1) (default: %(default)s, as the paper's code)",
                            minimum=0.0)
    tied: bool = option(False, "gpt: reuse the token embedding as the output layer (GPT-2's tying; the paper's "
                               "code, as it runs, trains a separate output matrix, the default here)")
    lr: Optional[float] = option(None, "learning rate (default: the model's own: 0.01 for gpt with AdamW; "
                                       "SGD with 20 for bilinear, 100 for one-layer)", minimum=0.0, strict=True)
    lr_z: float = option(0.0, "one-layer model: learning rate of Z, the attention (default 0: frozen)", minimum=0.0)
    weight_decay: float = option(0.01, "AdamW's decoupled weight decay (default: %(default)s)", minimum=0.0)
    batch_size: int = option(64, "minibatch size (default: %(default)s)", minimum=1)
    full_batch: bool = option(False, "one step per epoch on all training sentences (overrides --batch-size)")
    optimizer: Optional[str] = option(None, "sgd or adamw (default: the model's own: AdamW for gpt, SGD for "
                                            "the others); with sgd the GPT trace splits each update by sentence",
                                      choices=("sgd", "adamw"))
    epochs: Optional[int] = option(None, "passes over the training data (default: per experiment, "
                                         + ", ".join(f"{k} {v}" for k, v in DEFAULT_EPOCHS.items()) + ")",
                                   identity=False, minimum=1, maximum=10 ** 6)
    eval_every: int = option(1, "evaluate every N epochs (default: %(default)s)", identity=False, minimum=1)
    vocab: int = option(800, "entity vocabulary of the data generator (default: %(default)s)", minimum=1)
    entity_len: int = option(1, "tokens per entity (default: %(default)s)", minimum=1)
    seed: int = option(1234, "random seed (default: %(default)s)", minimum=0, maximum=2 ** 32 - 1)
    seeds: int = option(1, "train N models with seeds SEED, SEED+1, ... and report mean and spread",
                        identity=False, minimum=1, maximum=1000)
    dtype: str = option("float32", "training precision (default: %(default)s)", choices=DTYPES)
    backend: str = option("numpy", 'array library: numpy (CPU) or cupy (GPU, needs pip install -e ".[gpu]")',
                          identity=False, choices=BACKENDS)
    trace: int = option(0, "print the first STEPS updates of watched held-out pairs (reversal data)",
                        identity=False, minimum=0, metavar="STEPS")
    save: Optional[str] = option(None, "save a checkpoint of the run to DIR at the end (and on Ctrl-C)",
                                 identity=False, metavar="DIR")
    save_every: Optional[int] = option(None, "with --save: also every N epochs", identity=False, minimum=1,
                                       metavar="N")
    jobs: Optional[int] = option(None, "run the seeds in N processes side by side (default: one per core); "
                                       "results are identical to one after the other", identity=False, minimum=1,
                                 metavar="N")
    scheduler: Optional[str] = option(None, "run the seeds on the Dask cluster at ADDRESS (e.g. tcp://HOST:8786; "
                                            'needs pip install -e ".[cluster]")', identity=False, metavar="ADDRESS")
    resume: Optional[str] = option(None, "continue the run saved in DIR (same options; --epochs may grow); "
                                         "saves back to DIR", identity=False, metavar="DIR")
    overwrite: bool = option(False, "with --save: replace the checkpoint of another run in DIR", identity=False)

    # ---- checks -----------------------------------------------------------------------------
    def resolved(self):
        """A validated copy with the defaults that depend on other fields filled in (epochs, lr)."""
        cfg = self.validate()
        return cfg.replace(epochs=cfg.epochs or DEFAULT_EPOCHS[cfg.experiment], jobs=cfg.jobs or cores(),
                           lr=cfg.lr if cfg.lr is not None else model_registry()[cfg.model].default_lr)

    def validate(self):
        """Raise a one-line UsageError for the first value that cannot work; return self."""
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            kind = field_type(f)
            flag = "--" + f.name.replace("_", "-")
            if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < meta["minimum"]):
                raise UsageError(f"{flag} must be a whole number >= {meta['minimum']}, got {value!r}")
            if kind is int and value > meta.get("maximum", value):
                raise UsageError(f"{flag} must be at most {meta['maximum']}, got {value!r}")
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < meta["minimum"]
                                  or (meta.get("strict") and value == meta["minimum"])):
                raise UsageError(f"{flag} must be a finite number {'>' if meta.get('strict') else '>='} "
                                 f"{meta['minimum']:g}, got {value!r}")
            if kind is bool and not isinstance(value, bool):
                raise UsageError(f"{flag} must be true or false, got {value!r}")
            if kind is str and not isinstance(value, str):
                raise UsageError(f"{flag} must be a string, got {value!r}")
            if "choices" in meta and value not in choices(f):
                raise UsageError(f"unknown {f.name} {value!r}: choose one of {', '.join(choices(f))}")
        if self.dropout >= 1:
            raise UsageError(f"--dropout must be in [0, 1), got {self.dropout}")
        if (self.save or self.resume) and self.seeds > 1:
            raise UsageError("--save and --resume keep one run: use them with --seeds 1")
        if self.scheduler and (self.save or self.resume or self.trace):
            raise UsageError("--save, --resume and --trace work in this process: use them without --scheduler")
        return self

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The configuration stored by to_dict; unknown keys are refused, missing ones take defaults."""
        if not isinstance(data, dict):
            raise UsageError(f"a run configuration must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(cls.names()))
        if unknown:
            raise UsageError(f"unknown configuration key(s) {', '.join(unknown)}: "
                             f"the known ones are {', '.join(cls.names())}")
        return cls(**data)

    def identity(self):
        """The fields that must match for a checkpoint to continue this run."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["identity"]}

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]

    def replace(self, **changes):
        return replace(self, **changes)


# The paper's full configuration: its public code's defaults as the code runs (docs/paper.md, section 4);
# the defaults of RunConfig are the same except for the size and the epochs. `--paper` selects it.
PAPER = dict(model="gpt", layers=24, width=768, heads=12, pos="absolute", dropout=0.1, tied=False, epochs=3000,
             lr=0.01, weight_decay=0.01, batch_size=64, vocab=800, entity_len=1, seed=1234)


def paper_config(cfg, keep_epochs=False):
    """cfg with the paper's full configuration; an explicit number of epochs may be kept."""
    return cfg.replace(**{k: v for k, v in PAPER.items() if k != "epochs" or not keep_epochs})


def model_registry():
    from .model import Model                  # the models register themselves on import
    return Model.registry


def field_type(f):
    """int, float, bool or str: the type of a field, Optional[...] unwrapped."""
    args = [a for a in typing.get_args(f.type) if a is not type(None)]
    return args[0] if args else f.type


def choices(f):
    c = f.metadata["choices"]
    return c() if callable(c) else c
