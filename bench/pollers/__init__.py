"""One module per cloud backend for `bench/poller.py --backend <name>`: how to seed its fake with
running jobs, change them, and switch its adapter to the describe-each baseline (see bench/poller.py)."""
