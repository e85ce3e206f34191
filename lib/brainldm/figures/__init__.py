"""Figures and tables: image grids, flatmaps on the cortical surface, CI bar charts and the papers' numbers beside ours."""

from brainldm.figures.reference import TABLE1_COLUMNS, table1, table1_by_subject
from brainldm.figures.charts import ci_bars, paper_beside
from brainldm.figures.viz import image_grid, reconstruction_grid, brain_map, stream_map, bars_by_roi
from brainldm.figures.maps import MapScale, MapLayout, has_surface, flatmaps, category_map, viewer_dir, webgl_viewer, viewer_frame
from brainldm.figures.describe import stimulus_grid, trial_order, loss_curves
from brainldm.figures.overlap import similarity_scatter, precision_recall_lines, leak_examples
from brainldm.figures.panels import ci_panels, identity_scatter, oracle_bars

__all__ = ["TABLE1_COLUMNS", "table1", "table1_by_subject", "ci_bars", "paper_beside", "image_grid", "reconstruction_grid", "brain_map", "stream_map", "bars_by_roi", "MapScale", "MapLayout", "has_surface", "flatmaps", "category_map", "viewer_dir", "webgl_viewer", "viewer_frame", "stimulus_grid", "trial_order", "loss_curves", "similarity_scatter", "precision_recall_lines", "leak_examples", "ci_panels", "identity_scatter", "oracle_bars"]
