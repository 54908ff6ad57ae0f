"""``python -m pyro_frmdn.cli``: the ``pyro-frmdn`` command."""

from . import main

if __name__ == "__main__":
    raise SystemExit(main())
