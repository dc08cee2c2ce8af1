"""What an experiment is: everything about it that is not the model or the training loop.

Each experiment is a subclass of :class:`Experiment` with a ``name`` (its command,
``python -m minirev.demo NAME``); defining the class registers it, as models
register by ``kind``. The run configuration, the command line, the memory check,
the report and the figures read what they need from the class:

    name, help          the command and its line in --help
    default_epochs      the epochs a run trains unless --epochs says otherwise
    measures            what the validation NLL measures, as the verdict says it
    failed, learned     the verdict's words when the validation NLL is above / below the yardsticks
    traceable           whether --trace applies (it watches held-out reversal pairs)
    models              the model kinds it runs (None: every registered model)
    data(cfg, seed)     the Dataset (minirev/data.py)
    shape(cfg)          (vocabulary, sentence length, sentences) without building the data: the memory check
    measure(runs)       what else it measures after training: {name: number}, and the lines that say it
    figures(...)        its figures; the default draws the NLL curves and, with heatmap_columns,
                        the logit heatmaps of every group
"""
import os

from ..errors import UsageError


class Experiment:
    name = None
    help = ""
    default_epochs = 100
    measures = "validation"
    failed = "the validation sentences were not learned"
    learned = "the validation sentences were learned"
    traceable = False
    models = None
    heatmap_columns = 0          # 0: no logit heatmaps; else their columns (one heatmap per group)
    registry = {}                # name -> class, filled as each experiment class is defined

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            Experiment.registry[cls.name] = cls

    @classmethod
    def data(cls, cfg, seed):
        raise NotImplementedError

    @classmethod
    def shape(cls, cfg):
        raise NotImplementedError

    @classmethod
    def check(cls, cfg):
        """A one-line UsageError for a configuration this experiment cannot run."""
        if cls.models is not None and cfg.model not in cls.models:
            raise UsageError(f"the {cls.name} experiment runs --model {' or '.join(cls.models)}, not "
                             f"{cfg.model}: use --model {cls.models[0]}")
        if cfg.trace and not cls.traceable:
            traceable = [name for name, e in Experiment.registry.items() if e.traceable]
            raise UsageError(f"--trace watches held-out reversal pairs, which the {cls.name} experiment does not "
                             f"have: use it with {' or '.join(traceable)}")

    @classmethod
    def measure(cls, runs):
        """({name: number} added to the results' "final", the lines that say it) after training."""
        return {}, []

    @classmethod
    def figures(cls, result, runs, out_dir):
        """The experiment's figures in out_dir; returns their paths."""
        from .. import plots                      # matplotlib only when drawing
        os.makedirs(out_dir, exist_ok=True)
        paths = [plots.run_nll_figure(cls.name, result, runs, out_dir)]
        if cls.heatmap_columns:
            paths += plots.run_heatmaps(cls.name, runs[0], out_dir, cls.heatmap_columns)
        return paths
