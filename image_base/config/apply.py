"""Apply one phase of a merged config to a root directory (``/`` on a node, a fake root in tests)."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path

from image_base.config import steps
from image_base.config.dump import MASK, secret_values
from image_base.config.errors import ApplyError
from image_base.config.fsroot import FsRoot
from image_base.config.model import K3osConfig
from image_base.config.phases import K3S_KEYS, PHASES
from image_base.config.runner import RecordingRunner, Runner, SubprocessRunner
from image_base.config.steps import ApplyContext, KeyFetcher

Step = Callable[[ApplyContext], None]


def _commands_step(key: str) -> Step:
    def run(ctx: ApplyContext) -> None:
        for index, command in enumerate(getattr(ctx.cfg, key)):
            argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
            status = ctx.runner.run(argv, env=ctx.cfg.k3os.environment or None)
            shown = _redact(shlex.join(argv), secret_values(ctx.cfg))
            if status:
                ctx.failures.append(f"{key}[{index}] exited {status}: {shown}")
            else:
                ctx.actions.append(f"{key}[{index}]: {shown}")

    run.__doc__ = f"Run every ``{key}`` entry through the runner (strings via /bin/sh -c)."
    return run


#: Which step applies which key; the k3s keys share one step (they make one file).
STEPS: dict[str, Step] = {
    "hostname": steps.apply_hostname,
    "ssh_authorized_keys": steps.apply_ssh_keys,
    "write_files": steps.apply_write_files,
    "k3os.sysctl": steps.apply_sysctl,
    "k3os.modules": steps.apply_modules,
    "k3os.environment": steps.apply_environment,
    "k3os.dns_nameservers": steps.apply_dns,
    "k3os.ntp_servers": steps.apply_ntp,
    "k3os.wifi": steps.apply_wifi,
    "k3os.password": steps.apply_password,
    "k3os.data_sources": steps.apply_data_sources,
    **dict.fromkeys(K3S_KEYS, steps.apply_k3s),
    "init_cmd": _commands_step("init_cmd"),
    "boot_cmd": _commands_step("boot_cmd"),
    "run_cmd": _commands_step("run_cmd"),
}


def default_runner(root: Path, run_commands: bool = False) -> Runner:
    """Real commands on the live ``/`` (or when asked); elsewhere only recorded."""
    if run_commands or FsRoot(root).live:
        return SubprocessRunner()
    return RecordingRunner()


def _redact(text: str, secrets: list[str]) -> str:
    """Commands are the user's own text and may quote a secret: mask it in what we report."""
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def apply(
    cfg: K3osConfig,
    phase: str,
    root: Path = Path("/"),
    runner: Runner | None = None,
    fetch_keys: KeyFetcher | None = None,
) -> list[str]:
    """Apply the keys of ``phase`` to ``root``; return what was done, in order.

    Every step runs even when an earlier one failed (as k3OS does); if any failed, ApplyError is
    raised at the end carrying both lists. ``runner`` defaults to :func:`default_runner`;
    ``fetch_keys`` resolves ``github:USER`` ssh keys (None: such keys are skipped and logged).
    Host commands (sysctl, modprobe, hostname) run only when ``root`` is the live ``/``.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r} (expected one of {', '.join(PHASES)})")
    fs = FsRoot(Path(root))
    ctx = ApplyContext(cfg, fs, runner or default_runner(fs.root), fetch_keys)
    done: set[Step] = set()
    for key in PHASES[phase].keys:
        step = STEPS[key]
        if step in done:
            continue
        done.add(step)
        try:
            step(ctx)
        except (OSError, ValueError) as exc:
            ctx.failures.append(f"{key}: {exc}")
    if ctx.failures:
        raise ApplyError(ctx.actions, ctx.failures)
    return ctx.actions
