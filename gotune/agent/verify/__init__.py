"""The verify runner: benchmarks and state observations, executed on the target."""
