"""API tokens of the user's servers: in the OS keyring when there is one, else in a file only the user can read.

The `keyring` package picks the platform's store (macOS Keychain, Windows Credential Locker, Secret Service on a
Linux desktop). A machine without one (a headless Linux box: keyring's "fail" backend) keeps tokens in
`<user data>/tokens.json`, created with mode 0600. Tokens are never written into the preferences or a recipe.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from studio import paths

SERVICE = "Latent Studio"


def _keyring():
    """The keyring module when a real store backs it, else None."""
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return None
    try:
        if isinstance(keyring.get_keyring(), fail.Keyring):
            return None
    except Exception:  # noqa: BLE001 - a broken keyring setup means "no keyring", not a crash
        return None
    return keyring


def _token_file() -> Path:
    return paths.user_data_dir() / "tokens.json"


def _read_file() -> dict[str, str]:
    try:
        data = json.loads(_token_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(data, dict) else {}


def _write_file(tokens: dict[str, str]) -> None:
    path = _token_file()
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(tokens, handle)
    os.chmod(temporary, 0o600)  # even if the file existed with wider rights
    os.replace(temporary, path)


def where_tokens_live() -> str:
    """For the Settings dialog: "the system keyring" or the file's path."""
    return "the system keyring" if _keyring() is not None else f"{_token_file()} (readable only by you)"


def get_token(server: str) -> str:
    """The server's token, or "" when none was saved."""
    store = _keyring()
    if store is not None:
        try:
            return store.get_password(SERVICE, server) or ""
        except Exception:  # noqa: BLE001 - a locked or broken keyring: behave as if no token was saved
            return ""
    return _read_file().get(server, "")


def set_token(server: str, token: str) -> None:
    """Save (or, with "", forget) a server's token."""
    store = _keyring()
    if store is not None:
        if token:
            store.set_password(SERVICE, server, token)
        else:
            try:
                store.delete_password(SERVICE, server)
            except Exception:  # noqa: BLE001 - nothing saved is fine
                pass
        return
    tokens = _read_file()
    if token:
        tokens[server] = token
    else:
        tokens.pop(server, None)
    _write_file(tokens)
