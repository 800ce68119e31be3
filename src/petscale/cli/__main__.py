"""``python -m petscale.cli``: the command line, for launchers that take a module
(``accelerate launch -m petscale.cli tune ...``)."""

from petscale.cli import main

main()
