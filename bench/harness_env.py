"""Environment every benchmark's system runs with."""

# The benchmarks drive far more writes per person than anyone makes: keep the gateway's write limit
# checking (its cost is part of what is measured) but never throttling.
UNTHROTTLED = {"RATE_LIMIT_WRITES_PER_MINUTE": "1000000", "RATE_LIMIT_WRITE_BURST": "1000000"}
