"""The data: the two datasets behind one interface (the embedded world and NSD in its official layout), the cortical anatomy they sit on (pycortex's subject S1), repeat averaging and noise ceilings, and the plumbing every later stage uses: the on-disk cache (keyed, atomic, shared across chapters) and quiet progress reporting."""

from brainldm.data.noise import average_repeats, ncsnr_from_repeats, noise_ceiling, noise_ceiling_table
from brainldm.data.progress import progress_bar, progress_shown, quiet_libraries
from brainldm.data.cache import cache_key, array_digest, cached_arrays, cached_memmaps, atomic_write, ColumnBlocks, file_lock, clean_stale, CacheWarning
from brainldm.data.anatomy import ROI_NAMES, STREAMS, ROI_STREAM, SUBJECT, XFM, import_cortex, visual_anatomy, voxels_to_volume, inkscape_available, quiet, transform_name
from brainldm.data.datasets import load_dataset, DATASETS, SUBJECTS, Dataset, SPLITS

__all__ = ["average_repeats", "ncsnr_from_repeats", "noise_ceiling", "noise_ceiling_table", "progress_bar", "progress_shown", "quiet_libraries", "cache_key", "array_digest", "cached_arrays", "cached_memmaps", "atomic_write", "ColumnBlocks", "file_lock", "clean_stale", "CacheWarning", "ROI_NAMES", "STREAMS", "ROI_STREAM", "SUBJECT", "XFM", "import_cortex", "visual_anatomy", "voxels_to_volume", "inkscape_available", "quiet", "transform_name", "load_dataset", "DATASETS", "SUBJECTS", "Dataset", "SPLITS"]
