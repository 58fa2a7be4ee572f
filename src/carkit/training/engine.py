"""The one training loop every carkit model uses.

Features: optimizer (Adam/AdamW) and cosine schedule from the recipe, gradient
clipping, bf16 autocast and channels_last (what makes CPU training pay), EMA
weights, checkpoint every N steps and exact resume (batches are a function of
the step, see data/patches.py), periodic validation PSNR, a tqdm progress bar,
a JSONL log, and data-parallel training with torch.distributed when launched
by ``torchrun`` (gloo on CPU, nccl on GPU).

Model families whose training is more than "restore lq towards gt with a
pixel loss" register a :class:`TrainTask` and name it in their recipe
(``[optim] task = "..."``).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data.degrade import make_degradation
from ..data.folders import load_images
from ..data.patches import JpegPatchBatches, StepSampler
from ..models.registry import create_model
from .recipe import DEFAULT_RUNS_ROOT, Recipe, RecipeError, resolve_run
from .state import load_checkpoint, save_checkpoint
from .validate import ValidationSet


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed() -> DistInfo:
    """Join the process group torchrun set up (WORLD_SIZE > 1), else single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(rank=dist.get_rank(), world=dist.get_world_size(),
                    local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def learning_rate(recipe: Recipe, step: int) -> float:
    if recipe.warmup and step < recipe.warmup:
        return recipe.lr * (step + 1) / recipe.warmup
    if recipe.schedule == "constant":
        return recipe.lr
    t = min(1.0, step / max(1, recipe.iterations))
    return recipe.min_lr + 0.5 * (recipe.lr - recipe.min_lr) * (1 + math.cos(math.pi * t))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def parameter_digest(model: torch.nn.Module) -> str:
    """sha256 of all parameters: equal on every rank iff data parallelism kept them in sync."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model itself, whether or not DDP wraps it (tasks need its methods)."""
    return model.module if hasattr(model, "module") else model


def pixel_loss(kind: str, out: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    return (out - gt).abs().mean() if kind == "l1" else ((out - gt) ** 2).mean()


class TrainTask:
    """What differs between model families: extra modules trained alongside the
    model, the optimizers, and how a batch becomes each optimizer's loss.

    The default task restores ``batch['lq']`` towards ``batch['gt']`` with the
    recipe's pixel loss and one optimizer over the model. A task with several
    optimizers (an adversarial stage, say) names them in ``optimizers``; each
    step, the engine computes, backpropagates and applies their losses in that
    order. Extras (auxiliary decoders, discriminators) are checkpointed with
    the model; only the model is exported to the zoo.
    """

    name = "restore"
    optimizers: tuple[str, ...] = ("main",)
    #: DDP flag for models with parameters a step does not use.
    find_unused_parameters = False
    #: where run paths in task settings (e.g. ``sim_init``) resolve (:func:`resolve_run`);
    #: :func:`train` sets its own before building the extras
    runs_root: Path = DEFAULT_RUNS_ROOT

    def extras(self, model: torch.nn.Module, recipe: Recipe) -> dict[str, torch.nn.Module]:
        return {}

    def prepare(self, model: torch.nn.Module, extras: dict, recipe: Recipe) -> None:
        """Called after building and after resuming (e.g. to freeze sub-networks)."""

    def begin_step(self, step: int, model: torch.nn.Module, extras: dict) -> None:
        """Called before each step's losses (e.g. to switch phases)."""

    def optimizers_at(self, step: int) -> tuple[str, ...]:
        """The optimizers that run at ``step`` (all of them, in order, unless
        the task alternates between networks, as the virtual codec does)."""
        return self.optimizers

    def batches(self, images: list, degradation, recipe: Recipe, rank: int):
        """The training batches: a map-style dataset whose item ``step`` is that
        step's batch dict (a pure function of the step, so resume is exact).
        Default: patches of the recipe's images through ``degradation``."""
        return JpegPatchBatches(images, degradation, recipe.patch_size, recipe.batch_size,
                                seed=recipe.seed, rank=rank, aligned=recipe.aligned)

    def trained_for(self, recipe: dict) -> tuple[str, list[int]]:
        """(codec, [lo, hi]) the exported weights declare in their record: the
        codec whose output the data came from and the qualities trained
        (default: the recipe's ``codec`` and quality range or list)."""
        quals = recipe.get("quality_range") or [min(recipe["qualities"]), max(recipe["qualities"])]
        return recipe.get("codec", "jpeg"), [int(q) for q in quals]

    def learning_rate(self, recipe: Recipe, step: int) -> float:
        """The learning rate at ``step`` (default: the recipe's warmup + cosine)."""
        return learning_rate(recipe, step)

    def parameters(self, optimizer: str, model: torch.nn.Module, extras: dict):
        return [p for p in model.parameters() if p.requires_grad]

    def loss(self, optimizer: str, model, extras: dict, batch: dict, recipe: Recipe) -> torch.Tensor:
        return pixel_loss(recipe.loss, model(batch["lq"]), batch["gt"])

    def val_degradation(self):
        """Validation's baseline ``(gt uint8, quality) -> uint8 image``, also the
        ``lq`` that ``infer`` gets; None: JPEG at that quality (the log's "jpeg")."""
        return None

    def infer(self, model, lq: torch.Tensor, gt: torch.Tensor, quality: int) -> torch.Tensor:
        """Validation: the restored image of one (JPEG, original) pair. Models
        that read something other than decoded pixels derive their input here."""
        return model(lq)

    def val_extra(self, quality: int) -> dict | None:
        """Entries added to the log's validation row of ``quality`` after its
        images went through ``infer`` (a task that changes the rate reports it)."""
        return None

    def extra_models(self, gray: bool) -> dict[str, tuple[str, dict]]:
        """Extras that are registered models of their own, which ``carkit zoo
        export --part`` can ship: part name -> (model name, model kwargs)."""
        return {}


_TASKS: dict[str, type[TrainTask]] = {"restore": TrainTask}


def register_task(cls: type[TrainTask]) -> type[TrainTask]:
    """Class decorator: make a task selectable by a recipe's ``task`` key."""
    _TASKS[cls.name] = cls
    return cls


def get_task(name: str, **kwargs) -> TrainTask:
    from . import (blockcnn_tasks, dagn_tasks, hiding_tasks, hrcnn_tasks, jpegnet_tasks,  # noqa: F401
                   learned_codec_tasks, vcodec_tasks)  # (register their tasks)

    try:
        cls = _TASKS[name]
    except KeyError:
        raise RecipeError(f"unknown training task {name!r}; known: {', '.join(sorted(_TASKS))}") from None
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise RecipeError(f"bad task_kwargs for {name!r}: {exc}") from None


#: ``init_from`` prefix naming shipped zoo weights instead of a run folder
ZOO_PREFIX = "zoo:"


def _init_state(source: str, part: str = "model", runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> dict:
    """The tensors ``init_from`` names: a run folder's last checkpoint (its
    ``part``: the model's weights, not EMA, or a task's extra module such as
    ``"sim"``; a relative folder is under ``runs_root``, :func:`resolve_run`),
    or ``zoo:NAME``, shipped weights (the EMA weights the zoo holds, fp16
    stored, sha256-checked), so training can go on from a shipped model when
    the run that made it is gone (the optimizer state is not shipped: Adam
    starts afresh)."""
    from safetensors.torch import load_file

    what = "init_from" if part == "model" else f"{part} init"   # the recipe setting it came from
    if source.startswith(ZOO_PREFIX):
        from ..errors import ModelError, WeightsError
        from ..zoo.registry import load_pretrained

        try:
            model = load_pretrained(source[len(ZOO_PREFIX):])
        except (ModelError, WeightsError) as exc:
            raise RecipeError(f"{what} {source}: {exc}") from None
        return model.state_dict()
    path = resolve_run(source, runs_root) / "last.safetensors"
    if not path.exists():
        where = "" if Path(source).is_absolute() else f" ({source} is under the runs root, {runs_root})"
        raise RecipeError(f"{what}: {path} does not exist{where}")
    prefix = f"{part}."
    return {k[len(prefix):]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}


def init_from_run(model: torch.nn.Module, run_dir: str | os.PathLike, into: str = "", part: str = "model",
                  runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> dict:
    """Load the weights of another run's last checkpoint, or of zoo weights
    (``zoo:NAME``, see :func:`_init_state`); a relative ``run_dir`` is a run
    under ``runs_root`` (:func:`resolve_run`); ``into`` names the submodule
    they are for (their names get its prefix), "" the whole model; ``part``
    the checkpoint's module they come from (a run folder's; zoo weights are
    one module).

    Tensors are matched by name; names only one side has are left alone, so
    a variant with fewer modules (e.g. a DAGN ablation without the
    insensitive branch) starts from the modules it shares with the run; a
    model with ``grown_state`` first renames them for a deeper variant of the
    run's (a U-Net grown by a scale, which starts computing what the run's
    did). A
    shape mismatch, or no shared name at all, is an error. Returns counts of
    ``loaded`` / ``missing`` (kept at initialisation) / ``unused`` tensors."""
    state = _init_state(str(run_dir), part, runs_root)
    if into:
        state = {f"{into}.{k}": v for k, v in state.items()}
    if hasattr(model, "grown_state"):   # a deeper variant of the run's model (see ResUNet.grown_state)
        state = model.grown_state(state)
    own = model.state_dict()
    shared = [k for k in state if k in own]
    bad = [k for k in shared if state[k].shape != own[k].shape]
    if bad:
        raise RecipeError(f"init_from {run_dir}: {len(bad)} tensors differ in shape (first: {bad[0]})")
    if not shared:
        raise RecipeError(f"init_from {run_dir}: no tensor of this model is in that run")
    model.load_state_dict({k: state[k] for k in shared}, strict=False)
    return {"loaded": len(shared), "missing": len(own) - len(shared), "unused": len(state) - len(shared)}


def train(recipe: Recipe, out_dir: str | os.PathLike | None = None, resume: bool = True,
          max_steps: int | None = None, progress: bool | None = None,
          task: TrainTask | None = None, runs_root: str | os.PathLike = DEFAULT_RUNS_ROOT) -> dict:
    """Train ``recipe`` into ``out_dir`` (checkpoints, log.jsonl, final weights;
    default ``runs_root/<recipe name>``).

    ``runs_root`` is where the recipe's run paths point (``init_from``, a
    task's ``sim_init``: :func:`resolve_run`), default ./runs, so a clone trains
    anywhere. ``max_steps`` stops this invocation early (the schedule still follows
    ``recipe.iterations``), so long runs can be done in slices and resumed.
    Returns a summary dict (also written to ``out_dir/summary.json`` on rank 0;
    ``out_dir``: where the run is).
    """
    runs_root = Path(runs_root)
    out_dir = Path(out_dir) if out_dir is not None else runs_root / recipe.name
    task = task or get_task(recipe.task, **recipe.task_kwargs)
    task.runs_root = runs_root
    info = init_distributed()
    if info.main:
        make_run_dir(out_dir)   # before minutes of data loading, with a clear error
    if recipe.threads:
        torch.set_num_threads(recipe.threads)
    device = torch.device(f"cuda:{info.local_rank}" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(recipe.seed)  # same initial weights on every rank

    model = create_model(recipe.model, **recipe.model_kwargs).to(device)
    if recipe.init_from and not (resume and (out_dir / "last.json").exists()):
        init_from_run(model, recipe.init_from, recipe.init_into, runs_root=runs_root)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    extras = {k: m.to(device) for k, m in task.extras(model, recipe).items()}
    task.prepare(model, extras, recipe)
    ema = copy.deepcopy(model).eval() if recipe.ema > 0 else None
    optimizers = {name: torch.optim.AdamW(task.parameters(name, model, extras), lr=recipe.lr,
                                          weight_decay=recipe.weight_decay)
                  for name in task.optimizers}
    modules = {"model": model, **({"ema": ema} if ema is not None else {}), **extras}

    start = 0
    if resume:
        meta = load_checkpoint(out_dir, modules, optimizers)
        if meta is not None:
            start = int(meta["step"])
            task.prepare(model, extras, recipe)
    train_model = model
    if info.world > 1:
        train_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.local_rank] if device.type == "cuda" else None,
            find_unused_parameters=task.find_unused_parameters)

    root = recipe.root
    degradation = make_degradation(recipe.codec, recipe.qualities, recipe.quality_range, recipe.subsampling,
                                   recipe.gray, recipe.gray_plane)
    images = load_images([root / d for d in recipe.train_dirs], gray=recipe.gray and not degradation.color_input,
                         min_size=recipe.patch_size, plane=recipe.gray_plane)
    batches = task.batches(images, degradation, recipe, info.rank)
    stop = recipe.iterations if max_steps is None else min(recipe.iterations, start + max_steps)
    loader = DataLoader(batches, batch_size=None, sampler=StepSampler(start, stop),
                        num_workers=recipe.workers, persistent_workers=False)
    val_set = None
    if info.main and recipe.val_dir and recipe.val_every:
        val_set = ValidationSet.build(root / recipe.val_dir, recipe.val_qualities, recipe.gray,
                                      recipe.val_crop, recipe.val_limit, recipe.subsampling,
                                      plane=recipe.gray_plane, degrade=task.val_degradation() or degradation)

    log_path = out_dir / "log.jsonl"
    if info.main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=1))
        if start == 0:
            # A run from step 0 (a --restart into an old folder, or one that never
            # checkpointed) owns nothing of what the folder held: its log and
            # budget start empty, so neither mixes in a discarded run.
            (out_dir / "budget.json").unlink(missing_ok=True)
    log = open(log_path, "a" if start else "w") if info.main else None

    def write_log(entry: dict) -> None:
        if log is not None:
            log.write(json.dumps(entry) + "\n")
            log.flush()

    slice_info = {"from_step": start, "device": str(device), "threads": torch.get_num_threads(),
                  "world_size": info.world, "started": time.time()}

    def checkpoint(step: int) -> None:
        if info.main:
            save_checkpoint(out_dir, step, modules, optimizers, {"recipe": recipe.to_dict()})
            # The budget is updated with every checkpoint, so a run stopped at any
            # time (and resumed from that checkpoint) still accounts for its time.
            record_budget(out_dir, {**slice_info, "until_step": step,
                                    "seconds": time.time() - slice_info["started"]})
        if info.world > 1:
            dist.barrier()

    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=recipe.bf16)
    bar = tqdm(total=stop, initial=start, disable=(not info.main) if progress is None else not progress,
               desc=recipe.name, dynamic_ncols=True)
    t0, seen, last_val = time.time(), 0, None
    running = {name: 0.0 for name in optimizers}  # summed loss per optimizer since the last log
    counts = dict.fromkeys(optimizers, 0)
    step = start
    model.train()
    for step_batch in loader:
        batch = {k: v.to(device, non_blocking=True) for k, v in step_batch.items()}
        if recipe.channels_last:
            batch = {k: v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v
                     for k, v in batch.items()}
        task.begin_step(step, unwrap(train_model), extras)
        lr = task.learning_rate(recipe, step)
        for name in task.optimizers_at(step):
            optimizer = optimizers[name]
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                loss = task.loss(name, train_model, extras, batch, recipe)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if recipe.grad_clip:
                torch.nn.utils.clip_grad_norm_([p for g in optimizer.param_groups for p in g["params"]],
                                               recipe.grad_clip)
            optimizer.step()
            running[name] += float(loss.detach())
            counts[name] += 1
            last_name = name
        if ema is not None:
            update_ema(ema, model, min(recipe.ema, (1 + step) / (10 + step)))
        step += 1
        seen += 1
        bar.update(1)
        if step % recipe.log_every == 0:
            rate = seen / (time.time() - t0)
            means = {name: total / counts[name] for name, total in running.items() if counts[name]}
            entry = {"step": step, "loss": means[last_name], "lr": lr, "it_s": rate,
                     "time": round(time.time(), 1)}
            if len(optimizers) > 1:
                entry["losses"] = means
            write_log(entry)
            bar.set_postfix(loss=f"{entry['loss']:.4f}")
            running = dict.fromkeys(running, 0.0)
            counts = dict.fromkeys(counts, 0)
        if val_set is not None and (step % recipe.val_every == 0 or step == stop):
            last_val = val_set.evaluate(ema if ema is not None else model, device, task.infer, task.val_extra)
            write_log({"step": step, "val": last_val, "time": round(time.time(), 1)})
            bar.write(f"step {step}: " + ", ".join(
                f"{k} {v['psnr']:.2f} dB ({v['gain']:+.2f})"
                + (f" at {v['bpp']:.3f} bpp (codec alone {v['codec_bpp']:.3f})" if "codec_bpp" in v else "")
                for k, v in last_val.items()))
        if step % recipe.checkpoint_every == 0 or step == stop:
            checkpoint(step)
    bar.close()
    if step == start:
        checkpoint(step)
    digest = parameter_digest(model)
    summary = {"name": recipe.name, "model": recipe.model, "step": step, "iterations": recipe.iterations,
               "seconds_this_run": time.time() - t0, "world_size": info.world, "device": str(device),
               "threads": torch.get_num_threads(), "param_sha256": digest, "val": last_val,
               "out_dir": str(out_dir)}
    (out_dir / f"rank{info.rank}.sha256").parent.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{info.rank}.sha256").write_text(digest + "\n")
    if info.main:
        summary["total_seconds"] = json.loads((out_dir / "budget.json").read_text())["seconds"]
        (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if log is not None:
        log.close()
    return summary


def make_run_dir(out_dir: str | os.PathLike) -> Path:
    """Make a run folder (and its runs root), or say in one line why not: a
    link to a folder that is gone (a runs root committed as a link to another
    machine's folder, say) or a file in the way."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for p in (out_dir, *out_dir.parents):
            if p.is_symlink() and not p.exists():
                raise RecipeError(f"cannot make the run folder {out_dir}: {p} is a link to "
                                  f"{os.readlink(p)}, which does not exist (remove the link, or "
                                  "choose another runs root)") from None
        raise RecipeError(f"cannot make the run folder {out_dir}: {exc.strerror or exc}"
                          + (f" ({exc.filename})" if exc.filename else "")) from None
    return out_dir


def record_budget(out_dir: Path, current: dict) -> None:
    """budget.json: the wall time of every slice (invocation) of a run, the
    current slice replaced in place; the total is the budget a shipped weight got."""
    path = out_dir / "budget.json"
    budget = json.loads(path.read_text()) if path.exists() else {"seconds": 0.0, "slices": []}
    slices = [s for s in budget["slices"] if s.get("started") != current["started"]]
    slices.append(current)
    budget = {"seconds": sum(s["seconds"] for s in slices), "slices": slices}
    tmp = path.with_name(".budget.json.tmp")
    tmp.write_text(json.dumps(budget, indent=1))
    os.replace(tmp, path)
