"""Statistics over runs: population scores (challenge ε, U-LiRA, KLoM), uncertainty
(bootstrap intervals, paired tests) and rank aggregation. Pure NumPy/SciPy functions."""
