"""Strict weight files: ``<name>.safetensors`` plus ``<name>.json`` (kind, config, SHA-256 of the tensors).

Loading refuses, with a message naming the file, anything that does not match exactly: a missing file, a
pickle (``.pt``/``.pth``/``.ckpt``/``.pkl``: never unpickled), a different kind, a config the model class does
not accept, a tensor file whose checksum differs from the one recorded, and a tensor set or shape that differs
from the model built from the config.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from cryophase.errors import CryophaseError
from cryophase.io.atomic import default_file_mode, temporary_sibling

FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")


class WeightsError(CryophaseError):
    """A weights folder or file that cannot be loaded safely and exactly."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write_bytes(path: Path, write: Callable[[str], None]) -> None:
    tmp = str(temporary_sibling(path))
    try:
        write(tmp)
        os.chmod(tmp, default_file_mode())  # safetensors recreates the file owner-only (0600)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Write tensors (contiguous, on CPU) to a safetensors file atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cpu = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    _atomic_write_bytes(path, lambda tmp: save_file(cpu, tmp))


def load_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a pickle or corrupt file is refused with a clear message."""
    path = Path(path)
    refuse_pickle(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file ({exc})") from None


def refuse_pickle(path: Path) -> None:
    if Path(path).suffix.lower() in PICKLE_SUFFIXES:
        raise WeightsError(f"{path}: pickle checkpoints are never loaded (they can run arbitrary code); "
                           "cryophase weights are a folder of .safetensors + .json files")


def config_to_dict(config) -> dict:
    return asdict(config) if is_dataclass(config) else dict(config)


def config_from_dict(config_class, data: dict, where: Path):
    """Build ``config_class`` from ``data``, refusing unknown or missing-required fields."""
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise WeightsError(f"{where}: config has fields {unknown} that {config_class.__name__} does not know; "
                           "these weights were written by a different cryophase version or model")
    try:
        return config_class(**data)
    except TypeError as exc:
        raise WeightsError(f"{where}: config does not fit {config_class.__name__} ({exc})") from None


def save_model(folder: Path, name: str, kind: str, model: torch.nn.Module, config, extra: dict | None = None) -> None:
    """Write ``folder/name.safetensors`` and ``folder/name.json`` (kind, config, extra, checksum)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensor_path = folder / f"{name}.safetensors"
    save_tensors(tensor_path, model.state_dict())
    meta = {"format_version": FORMAT_VERSION, "kind": kind, "config": config_to_dict(config),
            "extra": extra or {}, "sha256": _sha256(tensor_path)}
    text = json.dumps(meta, indent=2) + "\n"
    _atomic_write_bytes(folder / f"{name}.json", lambda tmp: Path(tmp).write_text(text))


def read_model_meta(folder: Path, name: str, kind: str) -> dict:
    """The JSON side of a saved model, checked for format and kind."""
    folder = Path(folder)
    refuse_pickle(folder)
    if not folder.is_dir():
        raise WeightsError(f"{folder}: weights must be a folder holding {name}.safetensors and {name}.json")
    meta_path = folder / f"{name}.json"
    if not meta_path.is_file():
        pickles = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
        hint = f" (found pickle files {pickles}, which are never loaded)" if pickles else ""
        raise WeightsError(f"{folder}: no {name}.json{hint}")
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{meta_path}: not valid JSON ({exc})") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{meta_path}: format_version {meta.get('format_version')!r}, expected {FORMAT_VERSION}")
    if meta.get("kind") != kind:
        raise WeightsError(f"{meta_path}: holds a {meta.get('kind')!r} model, expected {kind!r}")
    return meta


def load_model(folder: Path, name: str, kind: str, config_class, build: Callable) -> tuple[torch.nn.Module, dict]:
    """Build ``build(config)`` from ``folder/name.json`` and load ``folder/name.safetensors`` strictly.

    Returns the model (in eval mode) and the JSON metadata.
    """
    folder = Path(folder)
    meta = read_model_meta(folder, name, kind)
    config = config_from_dict(config_class, meta["config"], folder / f"{name}.json")
    tensor_path = folder / f"{name}.safetensors"
    if not tensor_path.is_file():
        raise WeightsError(f"{folder}: no {name}.safetensors")
    if _sha256(tensor_path) != meta.get("sha256"):
        raise WeightsError(f"{tensor_path}: checksum differs from the one recorded in {name}.json "
                           "(the file was modified or belongs to other weights)")
    tensors = load_tensors(tensor_path)
    model = build(config)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = sorted(k for k in set(expected) & set(tensors) if expected[k].shape != tensors[k].shape)
    if missing or unexpected or wrong:
        raise WeightsError(f"{tensor_path}: tensors do not match the model in {name}.json "
                           f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})")
    model.load_state_dict(tensors, strict=True)
    return model.eval(), meta
