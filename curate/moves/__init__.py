"""Moving files undoably: one journal format, one undo loop, and the local and object-store movers."""
