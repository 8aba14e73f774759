"""Imports every command module so each registers its command on the app."""

import importlib
import pkgutil

import cryophase.cli as _pkg

for _info in pkgutil.iter_modules(_pkg.__path__):
    if _info.name.startswith("cmd_"):
        importlib.import_module(f"cryophase.cli.{_info.name}")
