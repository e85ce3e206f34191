"""The book: the chapter runner (papermill, execution records, the Jupyter Book build), the command line, the Dask task graph of the subject grid, each run's provenance, the installation check, the fidelity table and the browser check of the built pages."""

from brainldm.book.parameters import CHAPTER_PARAMETERS, CHAPTER_OVERRIDES, check_chapter_parameters
from brainldm.book.run_record import MIME, PACKAGES, git_state, model_hashes, RunSettings, provenance, provenance_lines, show_provenance, collect_provenance, provenance_page
from brainldm.book.session import ChapterSession, open_chapter
from brainldm.book.check import CHECK_CAPTION, CHECK_IMAGE_SIZE, gpu_lines, nsd_lines, verify_model, model_lines, report
from brainldm.book.fidelity import VARIANTS, ProtocolEffects, protocol_effects
from brainldm.book.cluster import RECONSTRUCTION_CHAPTERS, ENCODING_CHAPTERS, Stage, plan_stages, run_stage, EnvironmentPlugin, brainldm_environment, slurm_config, connect, run_stages
from brainldm.book.build import list_chapters, find_chapter, chapter_parameters, parse_parameters, run_chapter, WORLD_ONLY, PROFILES, profiles, profile_parameters, book_chapters, chapter_plan, execution_key, BuildOptions, build_book, smoke_parameters, write_reference
from brainldm.book.browser import RESIDUE, BENIGN_CONSOLE, CHROMIUM_CANDIDATES, Failure, BrowserReport, chromium_executable, site_pages, is_viewer, check_site
from brainldm.book.sphinx_ext import unique_scripts, setup
from brainldm.book.cli import main

__all__ = ["CHAPTER_PARAMETERS", "CHAPTER_OVERRIDES", "check_chapter_parameters", "MIME", "PACKAGES", "git_state", "model_hashes", "RunSettings", "provenance", "provenance_lines", "show_provenance", "collect_provenance", "provenance_page", "ChapterSession", "open_chapter", "CHECK_CAPTION", "CHECK_IMAGE_SIZE", "gpu_lines", "nsd_lines", "verify_model", "model_lines", "report", "VARIANTS", "ProtocolEffects", "protocol_effects", "RECONSTRUCTION_CHAPTERS", "ENCODING_CHAPTERS", "Stage", "plan_stages", "run_stage", "EnvironmentPlugin", "brainldm_environment", "slurm_config", "connect", "run_stages", "list_chapters", "find_chapter", "chapter_parameters", "parse_parameters", "run_chapter", "WORLD_ONLY", "PROFILES", "profiles", "profile_parameters", "book_chapters", "chapter_plan", "execution_key", "BuildOptions", "build_book", "smoke_parameters", "write_reference", "RESIDUE", "BENIGN_CONSOLE", "CHROMIUM_CANDIDATES", "Failure", "BrowserReport", "chromium_executable", "site_pages", "is_viewer", "check_site", "unique_scripts", "setup", "main"]
