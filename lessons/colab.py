"""The one setting behind the Colab links: the repository's owner/name on GitHub.

Set REPOSITORY once (when the repository is published, or to your fork), then run

    python lessons/colab.py

It writes the Colab links of lessons/README.md and the install line of each lesson's
first cell (the line Colab runs: pip install "minirev[lessons] @ git+https://github.com/...").
Then regenerate the notebooks: jupytext --update --to ipynb --set-kernel python3 lessons/NN_*.py
tests/test_lessons.py checks that the links and the lessons agree with this setting.
"""
import glob
import os
import re

REPOSITORY = "OWNER/minirev"          # owner/name on GitHub: the only place to change

HERE = os.path.dirname(os.path.abspath(__file__))
LESSONS = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "[0-9][0-9]_*.py")))
INSTALL = re.compile(r'git\+https://github\.com/[\w.-]+/[\w.-]+')
LINKS_START, LINKS_END = "<!-- colab links: python lessons/colab.py -->", "<!-- end of colab links -->"


def install_url():
    return f"git+https://github.com/{REPOSITORY}"


def links():
    rows = ["| lesson | notebook |", "| --- | --- |"]
    rows += [f"| `{name}` | [Open in Colab](https://colab.research.google.com/github/{REPOSITORY}/blob/main/"
             f"lessons/{name}.ipynb) |" for name in LESSONS]
    return "\n".join([LINKS_START, *rows, LINKS_END])


def main():
    for name in LESSONS:
        path = os.path.join(HERE, name + ".py")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        with open(path, "w", encoding="utf-8") as f:
            f.write(INSTALL.sub(install_url(), text))
    path = os.path.join(HERE, "README.md")
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start, end = text.index(LINKS_START), text.index(LINKS_END) + len(LINKS_END)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text[:start] + links() + text[end:])
    print(f"{len(LESSONS)} lessons and lessons/README.md now point at github.com/{REPOSITORY}")


if __name__ == "__main__":
    main()
