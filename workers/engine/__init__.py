"""Model runtime: loading, family adapters, encode, prefill, batched decode, sampling."""
