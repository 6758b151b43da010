"""Which image references point at Train's own registry."""

from django.conf import settings

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def train_registry_hosts() -> frozenset[str]:
    """TRAIN_REGISTRY_HOST plus, when it is a loopback address, the other loopback spellings."""
    host = settings.TRAIN_REGISTRY_HOST.lower()
    name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
    if name in LOOPBACK_NAMES:
        suffix = f":{port}" if port else ""
        return frozenset(f"{loopback}{suffix}" for loopback in LOOPBACK_NAMES)
    return frozenset({host})


def is_train_registry(domain: str) -> bool:
    return domain.lower() in train_registry_hosts()
