"""Scale-out on Dask: the book's expensive stages as tasks keyed by their cache key.

``brainldm book --scheduler ...`` plans, from every chapter's parameters, the stages the
chapters would compute on their own (:func:`plan_stages`):

* ``features``: the stimulus features ``z`` and ``c`` of a subject's training and test images
  (:func:`brainldm.features.stimulus.stimulus_features`, as :func:`brainldm.fit.decoding.decode` asks for them);
* ``reconstructions``: decoding ``z`` and ``c`` and reconstructing a subject's test images with a
  chapter's settings (:func:`brainldm.generate.reconstruction.brain_reconstructions`), after ``features``;
* ``ldm_features``: the encoding chapters' img2img features of a subject's images
  (:func:`brainldm.features.unet.ldm_features`, ``layers="all"``), after ``features``;

runs them on a Dask cluster (:func:`run_stages`), and only then executes the chapters, which
find every result in the cache. Each task's key is a digest of everything that determines its
results (dataset, subject, options, device, dtype, settings), so a stage two chapters share runs
once. Results are written with :func:`brainldm.data.cache.atomic_write`: a worker killed mid-task
leaves nothing behind, Dask reruns the task on another worker, and a rerun of the whole
command recomputes only what is missing.

Schedulers (:func:`connect`): ``local:N`` (a :class:`distributed.LocalCluster` of N
single-threaded worker processes), ``tcp://HOST:PORT`` (a running scheduler), ``slurm`` (a
:class:`dask_jobqueue.SLURMCluster` from a YAML file, see ``slurm.yml``). Workers get the
client's ``BRAINLDM_*`` variables (:class:`EnvironmentPlugin`), also when they join later.
"""

import dataclasses
import functools
import json
import logging
import os
import time
from pathlib import Path

from distributed.diagnostics.plugin import WorkerPlugin

from brainldm.settings import project_root
from brainldm.data.cache import cache_key
from brainldm.errors import BrainLDMError
from brainldm.models.ldm import SamplerSettings, sampler_settings

__all__ = ["Stage", "plan_stages", "run_stage", "run_stages", "connect", "EnvironmentPlugin", "slurm_config",
           "RECONSTRUCTION_CHAPTERS", "ENCODING_CHAPTERS"]

_VERSION = "1"
#: chapters that call brain_reconstructions directly: which subjects, and whether n_images applies
RECONSTRUCTION_CHAPTERS = {"02_decode_latents": ("subject+subjects", True),
                           "03_evaluate_reconstructions": ("subjects", True),
                           "08_refine_minddiffuser": ("subject", False),
                           "13_control_overlap": ("subjects", False)}
#: chapters whose encoders use ldm_features(layers="all") with the encoding settings
ENCODING_CHAPTERS = ("09_encode_latents", "11_compare_timesteps", "12_compare_unet_layers")


@dataclasses.dataclass(frozen=True)
class Stage:
    """One task: ``kind`` for one subject, with JSON-encoded dataset options and settings."""

    kind: str
    dataset: str
    subject: str
    options: str = "{}"
    device: str = None
    dtype: str = None
    settings: str = "{}"
    after: tuple = ()

    @property
    def key(self):
        """The task's key: kind, subject and a digest of everything that determines its results."""
        fields = dataclasses.asdict(self)
        fields.pop("after")
        return f"{self.kind}-{self.subject}-{cache_key(self.kind, fields, _VERSION)}"


def _json(value):
    return json.dumps(value, sort_keys=True, default=str)


def _sampler(dataset, purpose, params):
    """The sampler settings a chapter runs with: the chapter's ``seed`` and its ``sampler`` overrides."""
    return sampler_settings(dataset, purpose, **{"seed": params.get("seed", 0), **(params.get("sampler") or {})})


def _subjects(params, which):
    subject, subjects = params.get("subject"), list(params.get("subjects") or [])
    if which == "subject":
        return [subject]
    if which == "subjects":
        return subjects
    return [subject] + [s for s in subjects if s != subject]


def plan_stages(dataset, chapters):
    """The stages the chapters would compute, deduplicated, dependencies first.

    Parameters
    ----------
    dataset : str
    chapters : dict
        Chapter stem to its full parameters (defaults with the overrides applied).

    Returns
    -------
    stages : list of Stage
    """
    stages = {}

    def add(stage):
        stages.setdefault(stage.key, stage)
        return stage.key

    def base(params, subject):
        return dict(dataset=dataset, subject=subject, options=_json(params.get("dataset_options") or {}),
                    device=params.get("device"), dtype=params.get("dtype"))

    for stem, params in chapters.items():
        if stem in RECONSTRUCTION_CHAPTERS:
            which, with_n = RECONSTRUCTION_CHAPTERS[stem]
            settings = {"sampler": _sampler(dataset, "reconstruction", params).as_dict()}
            extra = {"n_images": params.get("n_images") if with_n else None,
                     "protocol": params.get("protocol") if stem in ("02_decode_latents",
                                                                     "03_evaluate_reconstructions") else None}
            for subject in _subjects(params, which):
                features = add(Stage("features", **base(params, subject)))
                add(Stage("reconstructions", **base(params, subject), settings=_json({**settings, **extra}),
                          after=(features,)))
        elif stem in ENCODING_CHAPTERS:
            settings = {"sampler": _sampler(dataset, "encoding", params).as_dict()}
            subject = params.get("subject")
            features = add(Stage("features", **base(params, subject)))
            add(Stage("ldm_features", **base(params, subject),
                      settings=_json({**settings, "n_train": params.get("n_train")}),
                      after=(features,)))
    order = [s for s in stages.values() if s.kind == "features"] + [s for s in stages.values() if s.kind != "features"]
    return order


@functools.lru_cache(maxsize=4)
def _models(dataset, device, dtype):
    from brainldm.models.loading import load_models

    return load_models(dataset, device=device, dtype=dtype)


@functools.lru_cache(maxsize=16)
def _dataset(dataset, subject, options):
    from brainldm.data.datasets import load_dataset

    return load_dataset(dataset, subject=subject, **json.loads(options))


def run_stage(stage, *_after):
    """Compute one stage in this process (results go to the cache); returns a summary dict.

    The stage runs with ``BRAINLDM_STAGE_THREADS`` CPU threads (default 1, as Dask's workers
    run), for numpy's BLAS and torch alike, so that its results are the same bytes whichever
    process computes them: float sums over threads depend on how they were split.
    """
    import torch
    from threadpoolctl import threadpool_limits

    threads = int(os.environ.get("BRAINLDM_STAGE_THREADS", "1"))
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            return _run_stage(stage)
    finally:
        torch.set_num_threads(saved)


def _run_stage(stage):
    from brainldm.fit.decoding import DEFAULT_ROIS
    from brainldm.features.stimulus import stimulus_features

    start = time.perf_counter()
    ds = _dataset(stage.dataset, stage.subject, stage.options)
    models = _models(stage.dataset, stage.device, stage.dtype)
    settings = json.loads(stage.settings)
    if stage.kind == "features":
        _, train_ids = ds.betas("train", roi=DEFAULT_ROIS["z"])
        _, test_ids = ds.betas("test", roi=DEFAULT_ROIS["z"], average=True)
        for feature in ("z", "c"):
            for ids in (train_ids, test_ids):
                stimulus_features(ds, models, feature, ids)
    elif stage.kind == "reconstructions":
        from brainldm.generate.reconstruction import brain_reconstructions

        brain_reconstructions(ds, models, SamplerSettings(**settings.pop("sampler")), **settings)
    elif stage.kind == "ldm_features":
        from brainldm.fit.encoding import encoding_data
        from brainldm.features.unet import ldm_features

        data = encoding_data(ds, n_train=settings.pop("n_train"))
        for feature in ("z", "c"):
            stimulus_features(ds, models, feature, data.ids)
        ldm_features(ds, models, data.ids, SamplerSettings(**settings["sampler"]), layers="all")
    else:
        raise BrainLDMError(f"unknown stage kind {stage.kind!r}")
    return {"key": stage.key, "seconds": time.perf_counter() - start, "pid": os.getpid()}


class EnvironmentPlugin(WorkerPlugin):
    """A Dask worker plugin that sets environment variables on every worker, also later ones."""

    name = "brainldm-environment"

    def __init__(self, environ):
        self.environ = dict(environ)

    def setup(self, worker):
        os.environ.update(self.environ)



def brainldm_environment():
    """The ``BRAINLDM_*`` variables of this process (and the thread limits, TQDM_DISABLE)."""
    return {k: v for k, v in os.environ.items()
            if k.startswith("BRAINLDM_") or k in ("TQDM_DISABLE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}


def slurm_config(path=None, root=None):
    """The SLURM cluster's settings, from ``path`` (default ``BRAINLDM_SLURM_CONFIG``, else ``slurm.yml``)."""
    import yaml


    path = Path(path or os.environ.get("BRAINLDM_SLURM_CONFIG") or Path(root or project_root()) / "slurm.yml")
    if not path.exists():
        raise BrainLDMError(f"no SLURM configuration at {path}; copy slurm.yml from the repository and edit it, "
                            "or pass --slurm-config PATH (or set BRAINLDM_SLURM_CONFIG)")
    with open(path) as f:
        config = yaml.safe_load(f) or {}
    if "cluster" not in config:
        raise BrainLDMError(f"{path} has no 'cluster' section (the keyword arguments of dask_jobqueue.SLURMCluster)")
    return config


def connect(scheduler, slurm_config_path=None, log=print):
    """A :class:`distributed.Client` for ``scheduler``: ``local:N``, ``tcp://HOST:PORT`` or ``slurm``.

    Returns
    -------
    client, cluster
        ``cluster`` is None for a scheduler this process did not start.
    """
    from distributed import Client, LocalCluster

    env = brainldm_environment()
    if scheduler.startswith("local"):
        _, _, n = scheduler.partition(":")
        try:
            n_workers = int(n or os.cpu_count() or 1)
        except ValueError:
            raise BrainLDMError(f"--scheduler local:N needs a number of workers, got {scheduler!r}") from None
        # the workers are spawned from this process and inherit its environment
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.WARNING)
        client = Client(cluster)
    elif scheduler.startswith("tcp://"):
        cluster, client = None, Client(scheduler)
    elif scheduler == "slurm":
        from dask_jobqueue import SLURMCluster

        config = slurm_config(slurm_config_path)
        kwargs = dict(config["cluster"])
        exports = [f"export {k}={json.dumps(v)}" for k, v in env.items()]
        kwargs["job_script_prologue"] = list(kwargs.get("job_script_prologue") or []) + exports
        cluster = SLURMCluster(**kwargs)
        jobs = config.get("jobs", 1)
        if isinstance(jobs, dict):
            cluster.adapt(minimum_jobs=jobs.get("minimum", 0), maximum_jobs=jobs.get("maximum", 1))
        else:
            cluster.scale(jobs=int(jobs))
        client = Client(cluster)
        log(f"SLURM job script:\n{cluster.job_script()}")
    else:
        raise BrainLDMError(f"unknown scheduler {scheduler!r}; use local:N, tcp://HOST:PORT or slurm")
    client.register_plugin(EnvironmentPlugin(env), name=EnvironmentPlugin.name)
    return client, cluster


def run_stages(stages, client=None, log=print, runner=run_stage):
    """Run ``stages``: on ``client``'s cluster (dependencies first), or in this process without one.

    A task whose worker dies is retried on another (Dask's ``allowed-failures``); a task that
    raises is retried ``retries`` times, then its error is raised here.
    """
    start = time.perf_counter()
    if not stages:
        return []
    if client is None:
        done = [runner(stage) for stage in stages]
    else:
        futures = {}
        for stage in stages:
            futures[stage.key] = client.submit(runner, stage, *[futures[k] for k in stage.after if k in futures],
                                               key=stage.key, retries=1, pure=False)
        try:
            done = client.gather(list(futures.values()))
        except Exception as error:
            raise BrainLDMError(f"a stage failed on the cluster: {type(error).__name__}: {error}") from error
    kinds = {}
    for stage in stages:
        kinds[stage.kind] = kinds.get(stage.kind, 0) + 1
    summary = ", ".join(f"{n} {kind}" for kind, n in kinds.items())
    log(f"{'stages (' + summary + ')':<28} ok      {time.perf_counter() - start:6.1f} s")
    return done
