"""Published numbers the chapters put beside this book's results."""

import pandas as pd

__all__ = ["TABLE1_COLUMNS", "table1", "table1_by_subject"]

TABLE1_COLUMNS = ("CLIP early", "CLIP mid", "CLIP late", "CNN early", "CNN mid", "CNN late", "Inception")

# Takagi & Nishimoto (2023), technical report, Table 1: two-way identification accuracy,
# mean over subj01, subj02, subj05 and subj07 (CLIP ViT-L/14, AlexNet and Inception-v3 layers).
_TABLE1 = {
    "CVPR baseline": (0.759, 0.710, 0.768, 0.814, 0.815, 0.818, 0.743),
    "+T": (0.885, 0.809, 0.841, 0.852, 0.914, 0.915, 0.858),
    "+T+G": (0.866, 0.819, 0.853, 0.880, 0.929, 0.926, 0.864),
    "+T+G+D": (0.855, 0.796, 0.866, 0.858, 0.921, 0.898, 0.843),
}


def table1():
    """Seed 002's Table 1 as a DataFrame: one row per method, one column per feature layer."""
    return pd.DataFrame.from_dict(_TABLE1, orient="index", columns=list(TABLE1_COLUMNS))


# The same table, per subject (seed 002, Table 1; rows [30], +T, +T+G, +T+G+D).
_TABLE1_SUBJECTS = {
    "subj01": {"CVPR baseline": (0.795, 0.732, 0.774, 0.851, 0.831, 0.830, 0.759),
               "+T": (0.922, 0.836, 0.859, 0.901, 0.934, 0.926, 0.877),
               "+T+G": (0.910, 0.848, 0.870, 0.922, 0.949, 0.938, 0.879),
               "+T+G+D": (0.901, 0.829, 0.877, 0.905, 0.944, 0.917, 0.856)},
    "subj02": {"CVPR baseline": (0.772, 0.709, 0.768, 0.830, 0.819, 0.815, 0.725),
               "+T": (0.904, 0.818, 0.842, 0.873, 0.922, 0.923, 0.854),
               "+T+G": (0.889, 0.834, 0.853, 0.912, 0.944, 0.933, 0.867),
               "+T+G+D": (0.885, 0.821, 0.869, 0.892, 0.934, 0.905, 0.848)},
    "subj05": {"CVPR baseline": (0.742, 0.707, 0.778, 0.800, 0.817, 0.825, 0.761),
               "+T": (0.874, 0.808, 0.846, 0.834, 0.914, 0.922, 0.866),
               "+T+G": (0.802, 0.779, 0.852, 0.809, 0.905, 0.920, 0.867),
               "+T+G+D": (0.788, 0.753, 0.861, 0.791, 0.897, 0.885, 0.842)},
    "subj07": {"CVPR baseline": (0.726, 0.693, 0.753, 0.775, 0.793, 0.801, 0.726),
               "+T": (0.839, 0.775, 0.819, 0.799, 0.885, 0.890, 0.835),
               "+T+G": (0.861, 0.814, 0.836, 0.875, 0.919, 0.912, 0.843),
               "+T+G+D": (0.845, 0.781, 0.858, 0.846, 0.907, 0.885, 0.825)},
}


def table1_by_subject():
    """Seed 002's Table 1 per subject: index (subject, method), one column per feature layer."""
    rows = {(subject, method): values for subject, table in _TABLE1_SUBJECTS.items()
            for method, values in table.items()}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(TABLE1_COLUMNS))
    frame.index = pd.MultiIndex.from_tuples(frame.index, names=["subject", "method"])
    return frame
