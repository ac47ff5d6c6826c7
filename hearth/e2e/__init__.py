"""The end-to-end test driver: the 0->1->N->0 loop against a real cluster, with a verdict table."""
