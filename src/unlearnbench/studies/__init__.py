"""Studies built from many runs: hyperparameter tuning, population scores."""
