"""Sources turn a dataset (Open Images, Kaggle, a folder) into records and an on-disk tree."""
