"""Open Images boxes -> letterboxed crops: the crop geometry, idempotent shards, the tree build."""
