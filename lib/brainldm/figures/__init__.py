"""Figures and tables: image grids, flatmaps on the cortical surface, CI bar charts and the papers' numbers beside ours."""

from brainldm.figures.reference import TABLE1_COLUMNS, table1, table1_by_subject
from brainldm.figures.charts import ci_bars, paper_beside
from brainldm.figures.viz import image_grid, brain_map, stream_map, bars_by_roi
from brainldm.figures.maps import brain_maps, category_map, webgl_viewer, viewer_dir, has_surface

__all__ = ["TABLE1_COLUMNS", "table1", "table1_by_subject", "ci_bars", "paper_beside", "image_grid", "brain_map", "stream_map", "bars_by_roi", "brain_maps", "category_map", "webgl_viewer", "viewer_dir", "has_surface"]
