"""Microsoft Azure: what Train needs there (today the Azure Container Registry mirror target).

Everything that knows Azure lives in this package; azure-identity is imported only inside it, on first
use."""
