"""python -m minirev: the same command line as `python -m minirev.demo` and the `minirev` command."""
import sys

from .demo import main

if __name__ == "__main__":
    sys.exit(main())
