"""What the Hugging Face kinds (`hf_audio`, `hf_vision`) share: loading a model from a local folder
or the hub without waiting on an unreachable hub, and the identity of its weights.

Their options name the weights with `model` (a hub id or a local folder written by
`save_pretrained`) and `revision`; `identity()` states them as the weights' identity instead (a
local folder by the hash of its weight files, wherever it lies; a hub id with the commit the
revision resolved to).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from avgate.declare import PARAMS_FILE, ConfigError
from avgate.files import sha256_of

WEIGHT_PATTERNS = ("*.safetensors", "*.bin")
AS_WEIGHTS = (
    "stated as the weights' identity: a local folder's weight-file hash, or hub id + commit"
)


def from_pretrained(loader: Any, model: str, revision: str, key: str, **kwargs: Any) -> Any:
    """`loader.from_pretrained(model, revision=...)`; a failure becomes a ConfigError naming
    `<key>.model`.

    A local folder or a hub id already in the Hugging Face cache loads without the network. A
    hub id not cached is downloaded only when the hub is reachable: offline it fails at once,
    not after the hub client's minute of retries.
    """
    try:
        return loader.from_pretrained(model, revision=revision, local_files_only=True, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        offline = None if Path(model).is_dir() else hub_unreachable()
        if Path(model).is_dir() or offline:
            where = f"the hub is unreachable ({offline})" if offline else "a local folder"
            raise ConfigError(
                f"{PARAMS_FILE}: {key}.model {model!r} (revision {revision!r}) could not be "
                f"loaded ({where}): {error}; give a local folder written by save_pretrained, "
                "or a hub id already in the local Hugging Face cache"
            ) from error
    try:
        return loader.from_pretrained(model, revision=revision, **kwargs)
    except (OSError, ValueError, KeyError) as error:
        raise ConfigError(
            f"{PARAMS_FILE}: {key}.model {model!r} (revision {revision!r}) could not be loaded "
            f"from the hub: {error}"
        ) from error


def hub_unreachable(timeout_s: float = 3.0) -> str | None:
    """Why the Hugging Face hub cannot be reached now (HF_HUB_OFFLINE, no connection), or None."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=timeout_s).close()
    except OSError as error:
        return f"no connection to {host}: {error}"
    return None


def weights_identity(model: str, revision: str, commit: str | None) -> dict:
    """What identifies the weights: a local folder by the hash of its weight files, a hub id
    by the id, the revision asked for and the commit it resolved to.

    >>> weights_identity("org/model", "v1", None)
    {'weights': 'hub', 'hub_id': 'org/model', 'revision': 'v1', 'commit': None}
    """
    folder = Path(model)
    if folder.is_dir():
        return {"weights": "local folder", "weights_sha256": folder_weights_sha256(folder)}
    return {"weights": "hub", "hub_id": model, "revision": revision, "commit": commit}


def folder_weights_sha256(folder: Path) -> str:
    """SHA-256 over a folder's weight files (*.safetensors, *.bin), in name order."""
    files = sorted({f for pattern in WEIGHT_PATTERNS for f in folder.glob(pattern)})
    if not files:
        raise ConfigError(f"{folder}: no *.safetensors or *.bin weight files to identify")
    digest = hashlib.sha256()
    for file in files:
        digest.update(f"{file.name} {sha256_of(file)}\n".encode())
    return digest.hexdigest()


def text_sha256(text: str) -> str:
    """
    >>> text_sha256("")[:8]
    'e3b0c442'
    """
    return hashlib.sha256(text.encode()).hexdigest()
