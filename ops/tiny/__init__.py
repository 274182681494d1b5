"""Pieces of the offline tiny-model builder: corpus, tokenizers, chat templates, one module per family."""
