"""Exact and near duplicates: hashing, the candidate search, pixel verification, clusters, applying them (quarantine, undo) and the contact sheet."""
