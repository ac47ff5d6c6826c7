"""``hearth fetch``: download a model source into the cache the engines read (the prewarm Job's step)."""
