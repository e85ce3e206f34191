"""The book runner and the command line, on tiny chapters written into a temporary project."""

from pathlib import Path

import nbformat
import pytest

from brainldm.book import build as book
from brainldm.book import cli
from brainldm.errors import BrainLDMError

CHAPTER = '''\
# %% [markdown]
# # A tiny chapter

# %% tags=["parameters"]
subject = "subj01"
n_images = 3
scale = 0.5
flags = {"a": 1}

# %%
print(subject, n_images * scale, flags)
'''

FAILING = '''\
# %% tags=["parameters"]
divisor = 0

# %%
x = 1

# %%
1 / divisor
'''


@pytest.fixture
def project(tmp_path):
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_say_hello.py").write_text(CHAPTER)
    (tmp_path / "chapters" / "02_divide_badly.py").write_text(FAILING)
    return tmp_path


def test_find_chapter_by_number_or_name(project):
    assert book.find_chapter("01", project).name == "01_say_hello.py"
    assert book.find_chapter(2, project).name == "02_divide_badly.py"
    assert book.find_chapter("01_say_hello", project).name == "01_say_hello.py"
    with pytest.raises(BrainLDMError, match="unknown chapter '7'.*01_say_hello, 02_divide_badly"):
        book.find_chapter("7", project)


def test_parameters_are_checked_and_converted():
    defaults = {"subject": "subj01", "n_images": 3, "scale": 0.5, "flags": {}}
    got = book.parse_parameters({"subject": "subj05", "n_images": "10", "scale": "2", "flags": "{'b': 2}"},
                                defaults)
    assert got == {"subject": "subj05", "n_images": 10, "scale": 2.0, "flags": {"b": 2}}
    with pytest.raises(BrainLDMError, match="unknown parameter 'subjet'.*subject, n_images"):
        book.parse_parameters({"subjet": "x"}, defaults)
    with pytest.raises(BrainLDMError, match="'n_images' expects int.*got 'ten'"):
        book.parse_parameters({"n_images": "ten"}, defaults)


def test_run_chapter_overrides_parameters(project, capsys):
    out = book.run_chapter("01", {"subject": "subj05", "n_images": "4"}, root=project)
    assert out == project / "book" / "01_say_hello.ipynb"
    nb = nbformat.read(out, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "subj05 2.0 {'a': 1}" in printed
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    line = capsys.readouterr().out
    assert line.startswith("01_say_hello") and " ok " in line and line.rstrip().endswith(" s")


def test_a_failing_cell_names_the_chapter_and_the_cell(project):
    with pytest.raises(BrainLDMError, match=r"chapter 02_divide_badly failed in cell \d+ .*ZeroDivisionError"):
        book.run_chapter("02", root=project)


def test_cli_prints_one_clear_line_and_exits_2(project, monkeypatch, capsys):
    monkeypatch.setenv("BRAINLDM_ROOT", str(project))
    assert cli.main(["run", "9"]) == 2
    assert capsys.readouterr().err.startswith("brainldm: error: unknown chapter '9'")
    assert cli.main(["run", "01", "-p", "n_images", "many"]) == 2
    err = capsys.readouterr().err
    assert "expects int" in err and "Traceback" not in err


def test_cli_run_writes_the_notebook(project, monkeypatch):
    monkeypatch.setenv("BRAINLDM_ROOT", str(project))
    assert cli.main(["run", "01", "-p", "subject", "subj05", "-o", str(project / "out")]) == 0
    assert (project / "out" / "01_say_hello.ipynb").exists()


LOADING = '''\
# %% tags=["parameters"]
dataset = "world"
subject = "subj01"
dataset_options = {}
n_images = 3

# %%
print(dataset, subject)
'''


@pytest.mark.parametrize("argv, expected", [
    (["run", "9"], "unknown chapter '9'; valid chapters are: 01_load_data"),
    (["run", "01", "-p", "n_images", "many"], "parameter 'n_images' expects int"),
    (["run", "01", "-p", "n_images", "0"], "parameter 'n_images' = 0 is not allowed"),
    (["run", "01", "-p", "dataset", "imagenet"], "parameter 'dataset' = 'imagenet' is not allowed"),
    (["run", "01", "-p", "dataset_options", "{'n_trian': 5}"], "unknown option(s) 'n_trian' of the world dataset"),
    (["run", "01", "-p", "subjet", "subj02"], "unknown parameter 'subjet'"),
    (["run", "01", "--colour"], "unrecognized arguments: --colour"),
    (["book", "--dataset", "imagenet"], "invalid choice: 'imagenet'"),
    (["book", "--profile", "fast"], "invalid choice: 'fast'"),
    (["book", "--no-execute", "--output", "{file}/book"], "cannot be written"),
    (["refs", "01", "99"], "unknown chapter '99'"),
    (["check", "--verbose"], "unrecognized arguments: --verbose"),
    (["check-book", "{tmp}/nowhere"], "there is no built book at"),
    (["check-book", "--timeout", "soon"], "invalid float value: 'soon'"),
    (["train-world", "--models", "vae,clip", "--out", "{tmp}/weights"], "unknown world models ['clip']"),
    (["train-world", "--threads", "0", "--out", "{tmp}/weights"], "--threads must be an integer >= 1"),
    (["train-world", "--bogus"], "unrecognized arguments: --bogus"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: command"),
])
def test_every_subcommand_reports_bad_input_in_one_line(argv, expected, tmp_path, monkeypatch, capsys):
    """Every subcommand: a bad chapter, parameter, dataset, option or folder is one line on stderr, status 2."""
    (tmp_path / "chapters").mkdir()
    (tmp_path / "chapters" / "01_load_data.py").write_text(LOADING)
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("BRAINLDM_ROOT", str(tmp_path))
    argv = [arg.replace("{tmp}", str(tmp_path)).replace("{file}", str(tmp_path / "file")) for arg in argv]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("brainldm: error: ") and captured.err.count("\n") == 1, captured.err
    assert expected in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
    assert not (tmp_path / "book").exists() and not (tmp_path / "weights").exists()  # nothing was run


def test_the_cli_catches_only_brainldm_errors(monkeypatch):
    """A bug is not a reader's error: it keeps its traceback."""
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "run_chapter", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run", "01"])


def test_build_options_check_the_dataset_and_profile():
    assert book.BuildOptions().dataset == "world"
    with pytest.raises(BrainLDMError, match="unknown dataset 'imagenet'; valid choices are: 'world', 'nsd'"):
        book.BuildOptions(dataset="imagenet")
    with pytest.raises(BrainLDMError, match="unknown profile 'fast'"):
        book.BuildOptions(profile="fast")


REFERENCE_KEYS = ("takagi2023cvpr", "takagi2023report", "lu2023minddiffuser", "allen2022nsd", "rombach2022ldm",
                  "song2021ddim", "dupre2022himalaya", "gao2015pycortex", "li2022blip", "ranftl2021dpt",
                  "radford2021clip", "krizhevsky2012alexnet", "szegedy2016inception", "kay2013compressive",
                  "dumoulin2008prf", "wang2004ssim", "ozcelik2023braindiffuser")


def test_references_bib_has_every_cited_work():
    """references.bib (the chapters' {cite} roles): every key, with its authors, title and year."""
    import re

    text = (book.project_root() / "references.bib").read_text()
    entries = {}
    for match in re.finditer(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", text, re.S):
        fields = dict((name.lower(), value) for name, value in
                      re.findall(r"^\s*(\w+)\s*=\s*[{\"]?(.+?)[}\"]?,?\s*$", match.group(3), re.M))
        entries[match.group(2)] = (match.group(1).lower(), fields)
    assert len(entries) == len(re.findall(r"^@", text, re.M)), "an entry that the parser could not read"
    for key in REFERENCE_KEYS:
        assert key in entries, f"references.bib has no entry {key}"
        kind, fields = entries[key]
        assert {"author", "title", "year"} <= set(fields), f"{key} lacks author, title or year: {sorted(fields)}"
        assert re.fullmatch(r"(19|20)\d\d", fields["year"]), f"{key}: year {fields['year']!r}"
        assert kind in ("article", "inproceedings", "misc"), f"{key}: @{kind}"
    config = book.project_root() / "_config.yml"
    import yaml

    assert yaml.safe_load(config.read_text())["bibtex_bibfiles"] == ["references.bib"]


def test_every_chapter_has_smoke_parameters_and_a_current_reference():
    """tests/notebooks holds each chapter run with its smoke parameters: rerun `make refs` after editing."""
    import jupytext

    smoke = book.smoke_parameters()
    for path in book.list_chapters():
        assert path.stem in smoke, f"{path.stem} has no smoke parameters in chapters/profiles.yml (smoke, world)"
        defaults = book.chapter_parameters(jupytext.read(path))
        book.parse_parameters(smoke[path.stem], defaults)
        reference = book.project_root() / "tests" / "notebooks" / f"{path.stem}.ipynb"
        assert reference.exists(), f"missing {reference}: run `make refs`"
        ref = nbformat.read(reference, as_version=4)
        ours = [c.source for c in jupytext.read(path).cells if c.cell_type == "code"]
        theirs = [c.source for c in ref.cells
                  if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]
        assert ours == theirs, f"{reference.name} is stale: run `make refs`"
        injected = [c for c in ref.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == (1 if smoke[path.stem] else 0)


def test_chapter_on_nsd_without_a_root_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BRAINLDM_NSD_ROOT", str(tmp_path / "no_nsd_here"))
    assert cli.main(["run", "01", "-p", "dataset", "nsd", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "chapter 01_describe_data failed in cell" in err
    assert f"NSD root {tmp_path / 'no_nsd_here'} does not exist" in err and "BRAINLDM_NSD_ROOT" in err
    assert "Traceback" not in err


def test_unknown_subject_in_a_chapter_names_the_choices(tmp_path, capsys):
    assert cli.main(["run", "01", "-p", "subject", "subj99", "-o", str(tmp_path)]) == 2
    assert "unknown subject 'subj99'; valid choices are: 'subj01', 'subj02', 'subj05', 'subj07'" in (
        capsys.readouterr().err)


def test_every_profile_names_real_chapters_and_parameters():
    """chapters/profiles.yml: each profile's parameters on each dataset are valid for their chapters."""
    for profile in book.PROFILES:
        for dataset in ("world", "nsd"):
            chapters, absent = book.book_chapters(dataset)
            assert set(book.profile_parameters(profile, dataset)) <= set(chapters)
            overrides, full = book.chapter_plan(dataset, profile, subjects=["subj02", "subj05"], device="cpu",
                                                dtype="float32")
            assert set(overrides) == set(chapters)
            for stem, params in overrides.items():
                if dataset == "nsd" and "dataset" in full[stem]:
                    assert params["dataset"] == "nsd"
                if "subjects" in full[stem]:
                    assert params["subjects"] == ["subj02", "subj05"]
                if "subject" in full[stem]:
                    assert params["subject"] == "subj02"
                if "dtype" in full[stem]:
                    assert params["device"] == "cpu" and params["dtype"] == "float32"
    assert book.book_chapters("nsd")[1] == ["14_check_ground_truth", "90_describe_models"]
    paper = book.profile_parameters("paper", "nsd")
    assert paper["02_decode_latents"]["subjects"] == ["subj01", "subj02", "subj05", "subj07"]
    assert paper["02_decode_latents"]["sampler"] == {"n_samples": 5, "num_inference_steps": 50}
    with pytest.raises(BrainLDMError, match="unknown profile 'fast'"):
        book.profile_parameters("fast")


def test_provenance_is_recorded_and_gathered(tmp_path, capsys):
    import json

    from brainldm.book.run_record import (MIME, RunSettings, collect_provenance, provenance, provenance_lines,
                                          provenance_page)

    record = provenance("world", ["subj01"], settings=RunSettings(seeds={"seed": 3}, profile="smoke"))
    assert len(record["git_commit"] or "") == 40 and record["git_dirty"] in (True, False)
    assert record["versions"]["torch"] and record["versions"]["himalaya"] and record["versions"]["diffusers"]
    assert {"vae", "unet", "model_card"} <= set(record["models"])
    text = "\n".join(provenance_lines(record))
    assert "seed=3" in text and "profile: smoke" in text and "world subj01" in text
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell(outputs=[nbformat.v4.new_output(
        "display_data", data={MIME: json.dumps({"brainldm_provenance": record}), "text/plain": "provenance: x"})]))
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    found = collect_provenance([tmp_path / "01_x.ipynb"])
    assert found["01_x"]["dataset"]["subjects"] == ["subj01"]
    assert "## 01_x" in provenance_page(found) and "seed=3" in provenance_page(found)
    assert cli.main(["check"]) == 0
    assert "Provenance" in capsys.readouterr().out


def test_publish_commits_the_html_to_a_local_gh_pages_branch(tmp_path):
    import subprocess

    html = tmp_path / "out" / "_build" / "html"
    html.mkdir(parents=True)
    (html / "index.html").write_text("<html>book</html>")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    lines = []
    book._publish(html / "index.html", tmp_path, lines.append)
    files = subprocess.run(["git", "-C", str(tmp_path), "ls-tree", "--name-only", "gh-pages"], capture_output=True,
                           text=True, check=True).stdout.split()
    assert files == [".nojekyll", "index.html"] and "gh-pages" in lines[0]


def test_a_warm_build_skips_chapters_whose_inputs_are_unchanged(project, monkeypatch):
    out = project / "book"
    out.mkdir()
    params = {"n_images": 3}
    current, key = book._up_to_date("01_say_hello", params, out, project)
    assert not current  # never executed
    (out / "01_say_hello.ipynb").write_text("{}")
    book._record_execution("01_say_hello", key, out)
    assert book._up_to_date("01_say_hello", params, out, project) == (True, key)
    # anything the outputs depend on makes it stale: parameters, the chapter, the BRAINLDM_* settings
    assert not book._up_to_date("01_say_hello", {"n_images": 4}, out, project)[0]
    monkeypatch.setenv("BRAINLDM_DTYPE", "bfloat16")
    assert not book._up_to_date("01_say_hello", params, out, project)[0]
    monkeypatch.delenv("BRAINLDM_DTYPE")
    assert book._up_to_date("01_say_hello", params, out, project)[0]
    (project / "chapters" / "01_say_hello.py").write_text(CHAPTER + "\nprint('changed')\n")
    assert not book._up_to_date("01_say_hello", params, out, project)[0]
    (out / ".executed" / "01_say_hello.json").write_text("not json")  # a damaged record means: run again
    assert not book._up_to_date("01_say_hello", params, out, project)[0]


def test_the_longest_chapters_start_first_on_a_cluster(tmp_path):
    import yaml

    from brainldm.book.build import book_chapters, longest_first

    (tmp_path / "chapters").mkdir()
    assert longest_first(["a", "b", "c"], root=tmp_path) == ["a", "b", "c"]  # no times: numbering order
    (tmp_path / "chapters" / "durations.yml").write_text(yaml.safe_dump({"world": {"a": 5, "b": 50}}))
    assert longest_first(["a", "b", "c"], root=tmp_path) == ["b", "a", "c"]
    assert longest_first(["a", "b"], dataset="nsd", root=tmp_path) == ["a", "b"]
    # the shipped times cover every chapter of the world's book
    stems = book_chapters("world")[0]
    assert sorted(longest_first(stems)) == sorted(stems)
    assert longest_first(stems)[:2] == ["14_check_ground_truth", "08_refine_minddiffuser"]
    shipped = yaml.safe_load((Path(__file__).parents[1] / "chapters" / "durations.yml").read_text())["world"]
    assert set(shipped) == set(stems)
