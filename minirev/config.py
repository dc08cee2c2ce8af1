"""One typed run configuration, read by every part of a run.

    cfg = RunConfig(layers=1, width=32, epochs=50)       # defaults for the rest
    result, runs = run_experiment(cfg)

The command line builds its options from these fields (their defaults, help
texts and --help groups), checkpoints store ``cfg.to_dict()`` and compare the
fields that define the run, and ``paper=True`` (``--paper``) is the paper's full
configuration. A wrong value raises the package's one-line
:class:`~minirev.errors.UsageError` in ``validate``, and so does an option that the
chosen model or experiment does not use (``RunConfig(model="one-layer", layers=6)``):
a config remembers which fields were given, so a value equal to the default still
counts as given.
"""
import difflib
import math
import typing
import urllib.parse
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Optional

from .backend import BACKENDS
from .errors import UsageError
from .experiments import Experiment
from .gpt import POS
from .model import DTYPES, Model

GROUPS = ("model", "data", "training", "running", "output")     # the sections of --help, in this order
ADAMW_DECAY = 0.01       # AdamW's default decay (PyTorch's), which the paper's code ends up using


def option(default, help, group, identity=True, **cli):
    """A field with its --help group, its command-line help and its checks.

    identity=False: a resumed run may change it. added=True: a field added after checkpoint format 3, whose
    default is what a checkpoint without it ran with. cli may hold minimum (numbers),
    maximum (whole numbers), strict (a number must be > minimum), below (a number must be < below),
    choices (a tuple, or a function giving one),
    metavar, and command_line=False for a field the command line sets itself.
    """
    return field(default=default, metadata=dict(help=help, group=group, identity=identity, **cli))


@dataclass
class RunConfig:
    experiment: str = option("reversal", "which experiment", "data", choices=lambda: tuple(Experiment.registry),
                             command_line=False)
    model: str = option("gpt", "which model (default: %(default)s)", "model", choices=lambda: tuple(Model.registry))
    layers: int = option(2, "transformer blocks (default: %(default)s)", "model", minimum=1)
    width: int = option(64, "model width; the embedding dimension d for the bilinear model (default: %(default)s)",
                        "model", minimum=1)
    heads: int = option(4, "attention heads (default: %(default)s)", "model", minimum=1)
    pos: str = option("absolute", "positional encoding (default: %(default)s)", "model", choices=POS)
    dropout: float = option(0.1, "dropout rate in training, in [0, 1) (default: %(default)s, as the paper's code)",
                            "model", minimum=0.0, below=1.0)
    tied: bool = option(False, "gpt: reuse the token embedding as the output layer (GPT-2's tying; the paper's "
                               "code, as it runs, trains a separate output matrix, the default here)", "model")
    freeze_embeddings: bool = option(False, "gpt: do not train the token and position embeddings (wte, wpe), as the "
                                            "paper's code's --freeze_wte_wpe; refused with --tied, where wte is "
                                            "also the output layer", "training", added=True)
    loss_whole_sequence: bool = option(False, "gpt: the loss on every next token of a sentence, as the paper's "
                                              "code's --loss_whole_sequence (default: on the answer's tokens only)",
                                       "training", added=True)
    lr: Optional[float] = option(None, "learning rate (default: the model's own: 0.01 for gpt with AdamW; "
                                       "SGD with 20 for bilinear, 100 for one-layer)", "training", minimum=0.0,
                                 strict=True)
    lr_z: float = option(0.0, "one-layer model: learning rate of Z, the attention (default 0: frozen)", "training",
                         minimum=0.0)
    weight_decay: Optional[float] = option(None, f"weight decay (default: {ADAMW_DECAY} with AdamW, as the paper's "
                                                 "code; 0 with SGD, whose decay is the L2 penalty's)", "training",
                                          minimum=0.0)
    batch_size: int = option(64, "minibatch size (default: %(default)s)", "training", minimum=1)
    full_batch: bool = option(False, "one step per epoch on all training sentences (overrides --batch-size)",
                             "training")
    optimizer: Optional[str] = option(None, "sgd or adamw (default: the model's own: AdamW for gpt, SGD for "
                                            "the others); with sgd the GPT trace splits each update by sentence", "training",
                                      choices=("sgd", "adamw"))
    epochs: Optional[int] = option(None, "passes over the training data (default: the experiment's own, "
                                         "{experiment_epochs} for this one)", "training",
                                   identity=False, minimum=1, maximum=10 ** 6)
    eval_every: int = option(1, "evaluate every N epochs (default: %(default)s)", "training", identity=False,
                             minimum=1)
    vocab: int = option(800, "entity vocabulary of the data generator (default: %(default)s)", "data", minimum=1)
    entity_len: int = option(1, "tokens per entity (default: %(default)s)", "data", minimum=1)
    seed: int = option(1234, "random seed (default: %(default)s)", "data", minimum=0, maximum=2 ** 32 - 1)
    seeds: int = option(1, "train N models with seeds SEED, SEED+1, ... and report mean and spread", "running",
                        identity=False, minimum=1, maximum=1000)
    dtype: str = option("float32", "training precision (default: %(default)s)", "running", choices=tuple(DTYPES))
    backend: str = option("numpy", 'array library: numpy (CPU) or cupy (GPU, needs pip install -e ".[gpu]")', "running",
                          identity=False, choices=BACKENDS)
    trace: int = option(0, "print the first STEPS updates of watched held-out pairs (reversal data)", "output",
                        identity=False, minimum=0, metavar="STEPS")
    save: Optional[str] = option(None, "save a checkpoint of the run to DIR at the end (and on Ctrl-C)", "output",
                                 identity=False, metavar="DIR")
    save_every: Optional[int] = option(None, "with --save: also every N epochs", "output", identity=False, minimum=1,
                                       metavar="N")
    jobs: Optional[int] = option(None, "run the seeds in N processes side by side (default: one per core on the "
                                       "command line; from Python, 1: this process, so a script needs no "
                                       "__main__ guard); "
                                       "results are identical to one after the other", "running", identity=False, minimum=1,
                                 metavar="N")
    scheduler: Optional[str] = option(None, "run the seeds on the Dask cluster at ADDRESS (e.g. tcp://HOST:8786; "
                                            'needs pip install -e ".[cluster]")', "running", identity=False,
                                 metavar="ADDRESS")
    resume: Optional[str] = option(None, "continue the run saved in DIR (same options; --epochs may grow); "
                                         "saves back to DIR", "output", identity=False, metavar="DIR")
    overwrite: bool = option(False, "with --save: replace the checkpoint of another run in DIR", "output",
                            identity=False)
    paper: bool = option(False, "the paper's full configuration (24 layers, width 768, 12 heads, dropout 0.1, "
                                "3000 epochs unless --epochs is given): hours on a CPU, a GPU is advised", "model",
                         identity=False)     # a shorthand: the fields it sets are what a checkpoint compares

    # ---- checks -----------------------------------------------------------------------------
    def resolved(self):
        """A validated copy with the defaults that depend on other fields filled in: the paper's
        configuration (paper=True), the epochs (the experiment's), the learning rate, the optimiser and
        its weight decay (the model's own), the processes (1: this process, unless jobs asks for more).
        Resolving once is enough: a resolved config is returned as it is (a replace() makes a new one)."""
        if self.__dict__.get("_resolved"):
            return self
        cfg = self.validate()
        if cfg.paper:
            cfg = cfg._filled(**{k: v for k, v in PAPER.items() if not (k == "epochs" and cfg.epochs)})
        model = Model.registry[cfg.model]
        optimizer = cfg.optimizer or model.default_optimizer
        cfg = cfg._filled(epochs=cfg.epochs or Experiment.registry[cfg.experiment].default_epochs,
                          jobs=cfg.jobs or 1, lr=cfg.lr if cfg.lr is not None else model.default_lr,
                          optimizer=optimizer, weight_decay=cfg.weight_decay if cfg.weight_decay is not None
                          else ADAMW_DECAY if optimizer == "adamw" else 0.0)
        cfg._resolved = True
        return cfg

    def validate(self):
        """Raise a one-line UsageError for the first value that cannot work; return self."""
        for f in fields(self):
            value, meta = getattr(self, f.name), f.metadata
            if value is None and f.default is None:
                continue
            kind = field_type(f)
            flag = to_flag(f.name)
            if kind is int and (isinstance(value, bool) or not isinstance(value, int) or value < meta["minimum"]):
                raise UsageError(f"{flag} must be a whole number >= {meta['minimum']}, got {value!r}")
            if kind is int and value > meta.get("maximum", value):
                raise UsageError(f"{flag} must be at most {meta['maximum']}, got {value!r}")
            if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value) or value < meta["minimum"]
                                  or (meta.get("strict") and value == meta["minimum"])):
                raise UsageError(f"{flag} must be a finite number {'>' if meta.get('strict') else '>='} "
                                 f"{meta['minimum']:g}, got {value!r}")
            if kind is float and value >= meta.get("below", math.inf):
                raise UsageError(f"{flag} must be in [{meta['minimum']:g}, {meta['below']:g}), got {value!r}")
            if kind is bool and not isinstance(value, bool):
                raise UsageError(f"{flag} must be true or false, got {value!r}")
            if kind is str and not isinstance(value, str):
                raise UsageError(f"{flag} must be a string, got {value!r}")
            if "choices" in meta and value not in choices(f):
                raise UsageError(f"unknown {f.name} {value!r}: choose one of {', '.join(choices(f))}"
                                 + did_you_mean(str(value), choices(f)))
        if (self.save or self.resume) and self.seeds > 1:
            raise UsageError("--save and --resume keep one run: use them with --seeds 1")
        if self.scheduler is not None:
            check_scheduler(self.scheduler)
        if self.scheduler and (self.save or self.resume or self.trace):
            raise UsageError("--save, --resume and --trace work in this process: use them without --scheduler")
        Experiment.registry[self.experiment].check(self)
        if self.paper:
            self.check_paper()
        self.check_applies()
        if self.freeze_embeddings and self.tied:
            raise UsageError("--freeze-embeddings keeps wte fixed, and with --tied wte is also the output layer, "
                             "which would stay at its random start: drop --tied or --freeze-embeddings")
        if self.loss_whole_sequence and self.trace:
            raise UsageError("--trace explains updates of the loss on the answer only: drop --loss-whole-sequence "
                             "or --trace")
        return self

    def check_applies(self):
        """An option given for a model that does not read it is refused, naming the options it does take."""
        model = Model.registry[self.model]
        specific = {name for cls in Model.registry.values() for name in cls.options}
        ignored = [f.name for f in fields(self)                 # in field order: the same message every time
                   if f.name in self.given() and f.name in specific and f.name not in model.options]
        if ignored:
            takes = ", ".join(to_flag(n) for n in model.options) or "none of them"
            raise UsageError(f"{', '.join(to_flag(n) for n in ignored)} {'does' if len(ignored) == 1 else 'do'} not "
                             f"apply to --model {self.model}; of the model options "
                             f"({', '.join(to_flag(f.name) for f in fields(self) if f.name in specific)}) "
                             f"it takes {takes}")

    def check_paper(self):
        """paper=True sets the paper's GPT configuration: a field given with another value contradicts it."""
        for name, value in PAPER.items():
            if (name in self.given() or name == "model") and name != "epochs" and getattr(self, name) != value:
                flag = to_flag(name)
                raise UsageError(f"--paper sets {flag} {value}, but {flag} {getattr(self, name)} was given: "
                                 f"drop {flag} or --paper")

    def given(self):
        """The fields set when this config was made (or by replace), whatever their value."""
        return self.__dict__.get("_given", frozenset())

    # ---- JSON ----------------------------------------------------------------------------------
    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The configuration stored by to_dict; unknown keys are refused, missing ones take defaults.

        A key stored with its default value does not count as given (a JSON file stores every field)."""
        if not isinstance(data, dict):
            raise UsageError(f"a run configuration must be a JSON object, got {type(data).__name__}")
        defaults = {f.name: f.default for f in fields(cls)}
        cfg = cls(**data)
        cfg._given = frozenset(k for k, v in data.items() if v != defaults[k])
        return cfg

    def identity(self):
        """The fields that must match for a checkpoint to continue this run."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["identity"]}

    @classmethod
    def names(cls):
        return [f.name for f in fields(cls)]

    def replace(self, **changes):
        """A copy with these fields changed; they count as given."""
        new = self._filled(**changes)
        new._given = self.given() | set(changes)
        return new

    def _filled(self, **changes):  # a copy with defaults filled in: what was given stays what was given
        new = replace(self, **changes)
        new._given = self.given()
        return new


def _init_recording_given(init):
    """Wrap the dataclass's __init__: remember the fields given, refuse unknown ones in one line."""
    def __init__(self, *args, **kwargs):
        names = RunConfig.names()
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            raise UsageError(f"RunConfig has no field {unknown[0]!r}{did_you_mean(unknown[0], names)}; "
                             f"the fields are {', '.join(names)}")
        if len(args) > len(names):
            raise UsageError(f"RunConfig takes at most {len(names)} fields, got {len(args)}")
        init(self, *args, **kwargs)
        self._given = frozenset(names[:len(args)]) | frozenset(kwargs)
    __init__.__doc__ = init.__doc__
    return __init__


RunConfig.__init__ = _init_recording_given(RunConfig.__init__)


# The paper's full configuration: its public code's defaults as the code runs (docs/paper.md, section 4);
# the defaults of RunConfig are the same except for the size and the epochs. `--paper` selects it.
PAPER = dict(model="gpt", layers=24, width=768, heads=12, pos="absolute", dropout=0.1, tied=False, epochs=3000,
             lr=0.01, weight_decay=0.01, batch_size=64, vocab=800, entity_len=1, seed=1234)


def check_scheduler(address):
    """A Dask scheduler's address, tcp://HOST:PORT, or a one-line UsageError saying what is wrong with it."""
    example = "give the address 'dask scheduler' prints, e.g. tcp://HOST:8786"
    try:
        url = urllib.parse.urlsplit(address)
        host, port = url.hostname, url.port
    except ValueError as e:                     # 'tcp://[::1' (an unclosed IPv6 bracket), ':notaport'
        raise UsageError(f"--scheduler {address!r} is not an address ({e}): {example}") from None
    if url.scheme == "tls":
        raise UsageError(f"--scheduler {address!r}: tls:// needs certificates, which minirev does not hand to "
                         "Dask; use tcp:// (over a private network or an SSH tunnel)")
    if url.scheme == "inproc":
        raise UsageError(f"--scheduler {address!r}: an inproc:// address lives inside one Python process; start "
                         "the LocalCluster with protocol='tcp' and give its tcp:// address")
    if url.scheme != "tcp":
        raise UsageError(f"--scheduler {address!r}: the scheme must be tcp://, got "
                         f"{url.scheme + '://' if url.scheme else 'none'}: {example}")
    if not host or port is None or port == 0 or url.path or url.query or url.fragment:
        raise UsageError(f"--scheduler {address!r} needs a host and a port and nothing else: {example}")


def to_flag(name):
    return "--" + name.replace("_", "-")


def did_you_mean(word, candidates):
    """'; did you mean X?' for a close candidate, else ''."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def field_type(f):
    """int, float, bool or str: the type of a field, Optional[...] unwrapped."""
    args = [a for a in typing.get_args(f.type) if a is not type(None)]
    return args[0] if args else f.type


def choices(f):
    c = f.metadata["choices"]
    return c() if callable(c) else c
