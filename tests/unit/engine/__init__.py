"""Engine tests: tiny real models, HF `generate` as the oracle."""
