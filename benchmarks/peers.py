"""The regression peer from several weights folders on the particles of ``benchmarks/ldm.py`` (same seeds).

``ldm`` is held to the regression peer trained on the same data with the same CPU budget; when the training set
changes, the peer changes too. This prints the peer of each ``--peer`` folder (``NAME=DIR``; the shipped weights
are always included) on the same held-out particles as the ``ldm`` section, so a new model can also be compared
with an earlier, stronger peer. Session 3's weights: ``git show aba7f00:src/cryophase/weights/default/X`` for X in
regression.json and regression.safetensors.

    python benchmarks/peers.py --peer session3=runs/session3_weights [--n 32] [--threads 1]
"""

from __future__ import annotations

import argparse

import torch

from _common import HELDOUT_STRUCTURES, add_common_arguments, markdown, start
from cryophase.retrieval.base import get_method
from cryophase.specimens.registry import load_specimens
from ldm import DOSES_E_PER_A2, quality_rows, run_dose


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_common_arguments(parser, n_default=32)
    parser.add_argument("--peer", action="append", default=[], metavar="NAME=DIR", help="another peer (repeatable)")
    args = parser.parse_args()
    start(args, "Regression peers on the ldm benchmark's held-out particles")
    methods = {"regression (shipped)": get_method("regression", weights=args.weights)}
    for item in args.peer:
        name, sep, folder = item.partition("=")
        if not sep:
            parser.error(f"--peer {item!r}: expected NAME=DIR")
        methods[f"regression ({name})"] = get_method("regression", weights=folder)
    specimens = load_specimens([str(p) for p in HELDOUT_STRUCTURES], torch.Generator().manual_seed(0))
    rows = []
    for dose in DOSES_E_PER_A2:
        rows += quality_rows(run_dose(methods, specimens, dose, args, ideal=False), args.n)
    print(markdown(rows))


if __name__ == "__main__":
    main()
