"""Published numbers the chapters put beside this book's results."""

from pathlib import Path

import pandas as pd

__all__ = ["TABLE1_COLUMNS", "table1", "table1_by_subject"]

TABLE1_COLUMNS = ("CLIP early", "CLIP mid", "CLIP late", "CNN early", "CNN mid", "CNN late", "Inception")

# Takagi & Nishimoto (2023), technical report, Table 1: two-way identification accuracy with CLIP
# ViT-L/14, AlexNet and Inception-v3 layers, per subject (rows [30], +T, +T+G, +T+G+D) and the mean
# over subj01, subj02, subj05 and subj07 as the report prints it (subject "mean"; rounded, it may
# differ from the mean of the rounded subject rows in the third digit).
_TABLE1 = Path(__file__).with_name("takagi2023_table1.csv")


def _table1_rows():
    return pd.read_csv(_TABLE1).set_index(["subject", "method"])[list(TABLE1_COLUMNS)]


def table1():
    """Seed 002's Table 1 as a DataFrame: one row per method, one column per feature layer."""
    return _table1_rows().loc["mean"].rename_axis(None)


def table1_by_subject():
    """Seed 002's Table 1 per subject: index (subject, method), one column per feature layer."""
    return _table1_rows().drop(index="mean", level="subject")
