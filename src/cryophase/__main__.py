"""``python -m cryophase``: the ``cryophase`` command (also what ``torchrun -m cryophase`` starts)."""

from cryophase.cli.main import app

if __name__ == "__main__":
    app(prog_name="cryophase")
