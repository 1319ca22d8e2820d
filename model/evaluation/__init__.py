"""`prn-eval`: the AFLW2000-3D protocol's metrics, scoring, reports, the mean-face baseline."""
