"""Test suites: unit/ (no services), integration/ (real Redis, real processes), e2e/ (whole system)."""
