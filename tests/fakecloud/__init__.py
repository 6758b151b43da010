"""A fake cloud for tests and benchmarks: one local HTTP server that speaks each cloud's wire protocol.

`core` serves HTTP, injects faults from a seeded random source, counts calls and forwards what no
fake handles (STS, CloudWatch Logs) to moto. One module per cloud holds that cloud's behaviour and a
scripting API for tests: `sagemaker` today; `vertex` and `azure` fit the same `CloudHandler` shape.
`registry_auth` is separate: the Google and Azure registry login flows on their own TLS server in front
of a token-auth Distribution registry (the registry and its token realm share one host).
"""

from tests.fakecloud.core import FakeCloud, FaultPlan

__all__ = ["FakeCloud", "FaultPlan"]
