"""Published numbers the chapters put beside this book's results."""

import pandas as pd

__all__ = ["TABLE1_COLUMNS", "table1"]

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
