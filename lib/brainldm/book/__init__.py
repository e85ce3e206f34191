"""The book: the chapter runner (papermill, execution records, the Jupyter Book build), the command line, the Dask task graph of the subject grid, each run's provenance, the installation check, the fidelity table and the browser check of the built pages."""

from brainldm.book.parameters import check_chapter_parameters, check_dataset_options, CHAPTER_PARAMETERS, CHAPTER_OVERRIDES, DATASET_OPTIONS
from brainldm.book.run_record import MIME, RunSettings, provenance, provenance_lines, show_provenance, collect_provenance, provenance_page, git_state, model_hashes
from brainldm.book.session import ChapterSession, open_chapter
from brainldm.book.check import report, gpu_lines, nsd_lines, model_lines, verify_model
from brainldm.book.fidelity import protocol_effects
from brainldm.book.cluster import Stage, plan_stages, run_stage, run_stages, connect, EnvironmentPlugin, slurm_config, RECONSTRUCTION_CHAPTERS, ENCODING_CHAPTERS
from brainldm.book.build import project_root, list_chapters, find_chapter, chapter_parameters, parse_parameters, run_chapter, BuildOptions, build_book, smoke_parameters, write_reference, profiles, profile_parameters, book_chapters, chapter_plan, execution_key, WORLD_ONLY, PROFILES
from brainldm.book.browser import BENIGN_CONSOLE, RESIDUE, BrowserReport, Failure, check_site, chromium_executable, is_viewer, site_pages
from brainldm.book.sphinx_ext import setup, unique_scripts
from brainldm.book.cli import main

__all__ = ["check_chapter_parameters", "check_dataset_options", "CHAPTER_PARAMETERS", "CHAPTER_OVERRIDES", "DATASET_OPTIONS", "MIME", "RunSettings", "provenance", "provenance_lines", "show_provenance", "collect_provenance", "provenance_page", "git_state", "model_hashes", "ChapterSession", "open_chapter", "report", "gpu_lines", "nsd_lines", "model_lines", "verify_model", "protocol_effects", "Stage", "plan_stages", "run_stage", "run_stages", "connect", "EnvironmentPlugin", "slurm_config", "RECONSTRUCTION_CHAPTERS", "ENCODING_CHAPTERS", "project_root", "list_chapters", "find_chapter", "chapter_parameters", "parse_parameters", "run_chapter", "BuildOptions", "build_book", "smoke_parameters", "write_reference", "profiles", "profile_parameters", "book_chapters", "chapter_plan", "execution_key", "WORLD_ONLY", "PROFILES", "BENIGN_CONSOLE", "RESIDUE", "BrowserReport", "Failure", "check_site", "chromium_executable", "is_viewer", "site_pages", "setup", "unique_scripts", "main"]
