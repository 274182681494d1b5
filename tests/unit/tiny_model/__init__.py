"""Tests of the offline tiny-model builder."""
