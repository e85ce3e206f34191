"""The data: the two datasets behind one interface (the embedded world and NSD in its official layout), the cortical anatomy they sit on (pycortex's subject S1), repeat averaging and noise ceilings, and the plumbing every later stage uses: the on-disk cache (keyed, atomic, shared across chapters) and quiet progress reporting."""

from brainldm.data.noise import average_repeats, ncsnr_from_repeats, noise_ceiling, noise_ceiling_table, mean_sd
from brainldm.data.progress import progress_shown, progress_bar, quiet_libraries
from brainldm.data.cache import CacheWarning, cache_key, array_digest, STALE_AGE, KEY_MEMBER, MANIFEST, file_lock, clean_stale, atomic_write, cached_arrays, cached_memmaps, ColumnBlocks
from brainldm.data.anatomy import SUBJECT, XFM, STREAMS, ROI_STREAM, ROI_NAMES, MID_RADIUS, inkscape_available, bundled_filestore, import_cortex, quiet, transform_name, visual_anatomy, voxels_to_volume
from brainldm.data.datasets import load_dataset, DATASETS, SUBJECTS, Dataset, SPLITS, DATASET_OPTIONS, check_dataset_options

__all__ = ["average_repeats", "ncsnr_from_repeats", "noise_ceiling", "noise_ceiling_table", "mean_sd", "progress_shown", "progress_bar", "quiet_libraries", "CacheWarning", "cache_key", "array_digest", "STALE_AGE", "KEY_MEMBER", "MANIFEST", "file_lock", "clean_stale", "atomic_write", "cached_arrays", "cached_memmaps", "ColumnBlocks", "SUBJECT", "XFM", "STREAMS", "ROI_STREAM", "ROI_NAMES", "MID_RADIUS", "inkscape_available", "bundled_filestore", "import_cortex", "quiet", "transform_name", "visual_anatomy", "voxels_to_volume", "load_dataset", "DATASETS", "SUBJECTS", "Dataset", "SPLITS", "DATASET_OPTIONS", "check_dataset_options"]
