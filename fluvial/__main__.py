"""``python -m fluvial``: the ``fluvial`` command line."""

from fluvial.cli import main

if __name__ == "__main__":
    main()
