"""Local text embeddings, with no network and no PyTorch."""
