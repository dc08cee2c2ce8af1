"""Solutions of lesson 1. Try the exercise first: the lesson checks your own answer."""
import math


def predicted_uniform_nll(vocab_size):
    # p(answer) = 1 / |V| for every answer, so NLL = -log(1/|V|) = log |V|
    return math.log(vocab_size)


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "uniform guess": [
        ("the NLL is measured in nats: use the natural logarithm (math.log), not log2",
         lambda V: math.log2(V)),
        ("that is log10; the NLL is measured in nats: use math.log", lambda V: math.log10(V)),
        ("that is the probability 1/|V| itself; the NLL is minus its logarithm", lambda V: 1 / V),
        ("the NLL is MINUS the log of the probability 1/|V|, a positive number", lambda V: math.log(1 / V) if V else 0),
    ],
}
