"""``python -m codexd``: the same command line as the ``codexd`` script."""

from ._cli import main

if __name__ == "__main__":
    main()
