"""Solutions of lesson 8. Try the exercise first: the lesson checks your own answer."""


def predicted_below_uniform():
    # (a) in context: the answer can be copied from the sentence itself, a rule shared by all pairs;
    # (b) added: those facts are now trained in the asked direction;
    # (b) not added: nothing was written in that direction for them.
    return [1, 1, 0]


# Common wrong answers, and the hint the check gives when yours matches one.
MISTAKES = {
    "which questions end below log|V|": [
        ("in context, the answer is in the sentence itself: copying it is one rule for every pair",
         lambda: [0, 1, 0]),
        ("other facts written both ways do not write the held-out fact in its reverse direction",
         lambda: [1, 1, 1]),
        ("the added reverse sentences are trained like any other sentence", lambda: [1, 0, 0]),
    ],
}
