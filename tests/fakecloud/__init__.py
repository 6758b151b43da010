"""A fake cloud for tests and benchmarks: one local HTTP server that speaks each cloud's wire protocol.

`core` serves HTTP, injects faults from a seeded random source, counts calls and forwards what no
fake handles (STS, CloudWatch Logs) to moto. One module per cloud holds that cloud's behaviour and a
scripting API for tests: `sagemaker` today; `vertex` and `azure` fit the same `CloudHandler` shape.
"""

from tests.fakecloud.core import FakeCloud, FaultPlan

__all__ = ["FakeCloud", "FaultPlan"]
