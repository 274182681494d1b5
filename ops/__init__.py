"""Operations: Redis launcher, tiny-model builder, autoscaler, benchmarks."""
