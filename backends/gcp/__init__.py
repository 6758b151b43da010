"""Google Cloud: what Train needs there (today the Artifact Registry mirror target).

Everything that knows Google Cloud lives in this package; google-auth is imported only inside it, on
first use."""
