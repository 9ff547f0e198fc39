"""The tests' tokenizer: the package's built-in one (node/text/trained.py)."""

from node.text.trained import CORPUS, build_tokenizer_dir, train_tokenizer

__all__ = ["CORPUS", "build_tokenizer_dir", "train_tokenizer"]
