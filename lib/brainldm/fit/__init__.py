"""The linear maps: ridge regression with grouped cross-validation (decoding fMRI into features, encoding features into fMRI, and the banded joint model on himalaya), and the protocol switch between the authors' recipe and ours."""

from brainldm.fit.protocol import Protocol, PROTOCOLS, protocol_for
from brainldm.fit.ridge import GroupRidgeCV, group_kfold, contiguous_kfold, correlation_score, DEFAULT_ALPHAS, CV_SCHEMES, CONSTANT_TOLERANCE
from brainldm.fit.decoding import DEFAULT_ROIS, STREAM_ABOVE, AUTHORS_ALPHAS, Decoded, decode, decoding_table, fit_predict, decode_tables, ridge_recipe
from brainldm.fit.encoding import DEFAULT_N_TRAIN, EncodingData, encoding_data, roi_medians, KernelRidgeEncoder, EncodingResult, fit_encoders, bh_fdr, RoiScores, roi_scores, variance_partition, best_feature, truth_agreement, TUNING_OF_FEATURE, voxel_scores

__all__ = ["Protocol", "PROTOCOLS", "protocol_for", "GroupRidgeCV", "group_kfold", "contiguous_kfold", "correlation_score", "DEFAULT_ALPHAS", "CV_SCHEMES", "CONSTANT_TOLERANCE", "DEFAULT_ROIS", "STREAM_ABOVE", "AUTHORS_ALPHAS", "Decoded", "decode", "decoding_table", "fit_predict", "decode_tables", "ridge_recipe", "DEFAULT_N_TRAIN", "EncodingData", "encoding_data", "roi_medians", "KernelRidgeEncoder", "EncodingResult", "fit_encoders", "bh_fdr", "RoiScores", "roi_scores", "variance_partition", "best_feature", "truth_agreement", "TUNING_OF_FEATURE", "voxel_scores"]
