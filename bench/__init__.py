"""`make bench`: the like path of Tillit under load, each figure beside the machine's raw limit measured
in the same run (../shared/limits/). See docs/benchmarks.md for the latest published figures."""
