"""``python -m raybench`` is the ``raybench`` command."""

from raybench.cli import main

if __name__ == "__main__":
    main()
