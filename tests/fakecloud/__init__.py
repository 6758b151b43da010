"""Fake clouds for tests, benchmarks and trying Train without a cloud account: one local HTTP server
that speaks each cloud's wire protocol.

- `core` serves HTTP, injects faults from a seeded random source, counts calls and forwards what no
  fake handles (STS, CloudWatch Logs, the ECR API) to moto; `routes` pass a path prefix elsewhere (the
  standalone's `/v2/` to a Distribution registry).
- One module per cloud holds that cloud's behaviour and a scripting API for tests (`sagemaker` here;
  `vertex` and `azureml` fit the same `CloudHandler` shape). Each also defines
  `standalone(cloud, *, run_seconds) -> list[str]`: its handlers set to run every created job to
  completion, and lines saying what it serves.
- `python -m tests.fakecloud --port P` (`__main__`) runs every present cloud's `standalone` on one port
  until SIGINT/SIGTERM, and prints the `TRAIN_CLOUD_EMULATOR=http://127.0.0.1:P` to point Train at it.
- `registry_auth` is separate: the Google and Azure registry login flows on their own TLS server in
  front of a token-auth Distribution registry (the registry and its token realm share one host).
"""

from tests.fakecloud.core import FakeCloud, FaultPlan

__all__ = ["FakeCloud", "FaultPlan"]
