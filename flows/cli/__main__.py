"""``python -m ticktape.flows.cli`` = the ``ticktape`` command."""

from ticktape.flows.cli.main import main

main()
