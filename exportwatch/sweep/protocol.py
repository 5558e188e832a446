"""The typed messages between the sweep, its fork server and each model's process.

Three channels, one direction of traffic each way that matters:

- sweep → fork server: ``StartUnit`` (followed by the model process's end of a fresh pipe,
  passed as a file descriptor) or ``None`` (stop);
- fork server → sweep: ``ServerReady`` once warm, then ``Started`` / ``Exited`` per model process;
- model process → sweep: the rest, on its own pipe, so a process killed mid-message corrupts
  nothing but its own channel;
- sweep's worker pool → its caller (the runner): ``SweepEvent``, the model messages that are
  news for the caller, passed on unchanged with the model's name (``News``); results the
  parent makes itself (a crash, a timeout, an interrupt) are ``JobFinished`` too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from exportwatch.plan import Unit
from exportwatch.report import JobResult
from exportwatch.sweep.settings import SweepSettings

# --- the sweep and its fork server -------------------------------------------------------------


@dataclass(frozen=True)
class StartUnit:
    token: int  # the sweep's name for this model process
    unit: Unit
    log_path: Path | None  # where the process's stdout and stderr go
    settings: SweepSettings | None = None  # this unit's sweep (compare's base side); None: the server's


@dataclass(frozen=True)
class ServerReady:
    """torch, the exporters and the manifest's libraries are imported: forks are cheap now."""

    spawn_reason: str | None = None  # forking is unsafe here: why (the sweep spawns instead)
    preloaded: list[str] = field(default_factory=list)  # modules imported for the models


@dataclass(frozen=True)
class Preloading:
    """The server is about to run this import (for the models); it may hang or kill it."""

    statement: str


@dataclass(frozen=True)
class Started:
    token: int
    pid: int  # leads its own process group


@dataclass(frozen=True)
class Exited:
    token: int
    returncode: int  # Popen-style: negative is the signal


ServerMessage = ServerReady | Preloading | Started | Exited

# --- a model's process -> the sweep --------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    """What the model's process is doing now; a timeout names it."""

    name: str  # "build" | "capture" | "export" | "compile" (aoti) | "lowering" | "serialisation" | …
    path: str = ""  # the submodule, for export, compile, lowering, serialisation and verification


@dataclass(frozen=True)
class DeviceResolved:
    device: str  # the unit's device ("auto" resolved)


@dataclass(frozen=True)
class TargetStarted:
    target: str


@dataclass(frozen=True)
class TargetPhase:
    """News for the progress line: the running target moved on to ``phase`` (a :class:`Phase`'s
    name: ``lowering`` while the ``executorch`` target lowers). Made by the pool, never sent."""

    target: str
    phase: str
    path: str = ""


@dataclass(frozen=True)
class JobFinished:
    job: JobResult


@dataclass(frozen=True)
class UnitConfigError:
    message: str  # the manifest entry cannot be built: every target is skipped


@dataclass(frozen=True)
class UnitNote:
    """A warning about the manifest entry found once the model exists (an xfail path it lacks)."""

    message: str


@dataclass(frozen=True)
class SweepNote:
    """Something about the environment a model's process met (torchvision repaired): said once
    per sweep, however many models' processes send it."""

    message: str


@dataclass(frozen=True)
class ModelExit:
    """Model code ended the process itself (``os._exit``): said just before it happens."""

    message: str


@dataclass(frozen=True)
class UnitDone:
    """Every target of the unit has a result."""


ModelMessage = (
    Phase
    | DeviceResolved
    | TargetStarted
    | JobFinished
    | UnitConfigError
    | UnitNote
    | SweepNote
    | ModelExit
    | UnitDone
)


#: What the worker pool hands its caller: the model messages that are news beyond the pool.
SweepEvent = TargetStarted | TargetPhase | JobFinished | UnitConfigError | UnitNote | SweepNote


@dataclass(frozen=True)
class News:
    """One ``SweepEvent`` for the pool's caller, with the model it is about ("" for the sweep)."""

    model: str
    event: SweepEvent


def describe_phase(phase: Phase | None) -> str:
    """``while exporting `blocks.3``` for messages."""
    if phase is None:
        return "while starting the model's process"
    where = f"`{phase.path}`" if phase.path else "the root module"
    return {
        "build": "while building the model",
        "capture": "while capturing its inputs",
        "export": f"while exporting {where}",
        "compile": f"while compiling {where} with AOTInductor",  # targets.base.COMPILE_PHASE
        "lowering": f"while lowering {where} for ExecuTorch",
        "serialisation": f"while serialising {where} to a .pte",
        "verification": f"while verifying the export of {where}",
    }.get(phase.name, f"during {phase.name}")
