"""Pickle I/O for data files (OVPKL) with a restricted loader.

TAO's OVPKL files are pickles, and a pickle can run arbitrary code on load (``os.system`` is one
``GLOBAL`` opcode away). :func:`load` only lets the unpickler build numpy arrays, numpy dtypes and
scalars, and builtin containers; any other global (a function, a class, a module attribute) is refused
with :class:`UnsafePickleError` before anything is called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

from visionops import atomic

PROTOCOL = 4
"""Protocol 4: readable by every Python >= 3.4 and by TAO's loaders; arrays go in-band."""

# (module, name) pairs a data pickle may reference. Both numpy 1 (numpy.core) and numpy 2 (numpy._core)
# spellings, because files written under either must load under either.
_ALLOWED_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [(mod, "_reconstruct") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "scalar") for mod in ("numpy.core.multiarray", "numpy._core.multiarray")]
    + [(mod, "_frombuffer") for mod in ("numpy.core.numeric", "numpy._core.numeric")]
    # Protocols < 3 spell builtins "__builtin__" (the unpickler maps the Python 2 name after this check).
    + [(mod, name) for mod in ("builtins", "__builtin__") for name in ("set", "frozenset", "complex", "bytearray")]
    + [
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol 2 stores array bytes as latin-1 text re-encoded by this
        ("collections", "OrderedDict"),
    ]
)


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle referenced something other than numpy arrays and builtin containers."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, source: str) -> None:
        super().__init__(file)
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._source}: refusing to load {module}.{name}: data pickles may only contain numpy arrays and "
            "builtin containers. The file is not an OVPKL file written by a converter, or it has been tampered "
            "with; re-create it with `dvc repro convert` (or `visionops data convert`)."
        )


def loads(data: bytes, source: str = "<bytes>") -> Any:
    """Unpickle ``data`` with the restricted unpickler."""
    try:
        return _RestrictedUnpickler(io.BytesIO(data), source).load()
    except UnsafePickleError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise pickle.UnpicklingError(
            f"{source}: not a readable pickle ({type(exc).__name__}: {exc}); the file is truncated or corrupt, "
            "re-create it with `dvc repro convert`"
        ) from exc


def load(path: str | os.PathLike) -> Any:
    """Load a pickle file, admitting only numpy arrays/dtypes/scalars and builtin containers."""
    path = Path(path)
    return loads(path.read_bytes(), str(path))


def dump(path: str | os.PathLike, obj: Any) -> Path:
    """Pickle ``obj`` to ``path`` atomically (temp file + rename)."""
    return atomic.write_bytes(path, pickle.dumps(obj, protocol=PROTOCOL))
