"""The foundation every stage stands on: errors, decoding, the tree layout, storage, the manifest, atomic writes and the tree lock."""
