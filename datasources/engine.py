"""The probe engine: the ordered semantics of DESIGN.md, probed concurrently.

Providers are considered in the given order. The first one that returns userdata wins; if none
does, the metadata of the first detected provider is used. Every provider is probed at once in
its own thread, then the results are walked in order, and the walk stops as soon as the ordered
rule has decided, without waiting for providers further down the list. One overall deadline
bounds everything; the DMI fast path skips providers of other clouds without network access.

The deadline is ``started + timeout`` (``started``: when the process began, so interpreter
start-up counts too). The walk gives up a little before it, leaving time to write the output
and exit; the providers' own deadline is a little earlier still, so a provider that honours it
has reported before the walk gives up on it.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import pluggy

from datasources.model import Dmi, FetchContext, Metadata, NotDetected, Outcome, ProviderError
from datasources.plugins import ProviderTable, get_plugin_manager, needs_entrypoints, provider_table

# The longest --timeout (a day): beyond it thread and socket waits overflow.
MAX_TIMEOUT = 86400.0
# Kept free at the end of the timeout for writing the output and exiting (at most this, and
# at most a tenth of the timeout).
OUTPUT_RESERVE = 0.1
# Between the providers' deadline and the moment the walk gives up on them (at most this, and
# at most a twentieth of the timeout): time for a provider to report after its last request.
REPORT_MARGIN = 0.05


class UsageError(Exception):
    """A mistake of the caller: unknown provider, bad timeout."""


@dataclass
class Attempt:
    """One provider's part in a fetch."""

    provider: str
    outcome: Outcome
    detail: str
    elapsed_ms: int

    def as_dict(self) -> dict[str, object]:
        """The ``attempts[]`` entry of ``--json``."""
        return {
            "provider": self.provider,
            "outcome": self.outcome,
            "detail": self.detail,
            "elapsed_ms": self.elapsed_ms,
        }

    def describe(self) -> str:
        """One log line telling "not this cloud" from "this cloud, but it failed"."""
        what = {
            "userdata": f"userdata ({self.detail})",
            "detected": f"detected ({self.detail})",
            "absent": f"absent (not this cloud: {self.detail})",
            "error": f"error (this cloud, but: {self.detail})",
        }[self.outcome]
        return f"{self.provider}: {what} in {self.elapsed_ms} ms"


@dataclass
class FetchResult:
    """The outcome of a fetch: the winning provider's metadata (None: nothing detected)."""

    metadata: Metadata | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def provider(self) -> str | None:
        """Name of the winning provider."""
        return self.metadata.provider if self.metadata else None

    @property
    def has_userdata(self) -> bool:
        """True when the winner gave userdata."""
        return self.metadata is not None and self.metadata.userdata is not None


@dataclass
class _Probe:
    provider: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome = "error"
    detail: str = ""
    metadata: Metadata | None = None
    elapsed_ms: int = 0
    started: float = field(default_factory=time.monotonic)
    claimed: bool = False  # DMI names this provider's cloud: silence is an error, not absence


def resolve_providers(names: Sequence[str], table: ProviderTable) -> list[str]:
    """Canonical names in the given order, aliases resolved, duplicates dropped.

    :raises UsageError: a name no plugin announces.
    """
    out: list[str] = []
    for name in names:
        canonical = table.resolve(name)
        if canonical is None:
            known = " ".join(table.names())
            raise UsageError(f"unknown provider {name!r} (known: {known})")
        if canonical not in out:
            out.append(canonical)
    return out


def dmi_claimed_cloud(
    pm: pluggy.PluginManager, dmi: Dmi, log: Callable[[str], None] | None = None
) -> str | None:
    """The one cloud DMI positively names, or None (silent, or several clouds claimed).

    A plugin whose claims hook raises (or returns garbage) is asked on its own and ignored,
    with a log line; the others' claims still count.
    """
    try:
        answers = list(pm.hook.datasources_dmi_claims(dmi=dmi))
    except Exception:  # some plugin is broken: ask each one alone
        answers = []
        plugins = pm.get_plugins()
        for plugin in plugins:
            caller = pm.subset_hook_caller("datasources_dmi_claims", [p for p in plugins if p is not plugin])
            try:
                answers.extend(caller(dmi=dmi))
            except Exception as exc:  # third-party code
                (log or _stderr_log)(
                    f"{pm.get_name(plugin)}: DMI claims ignored: {type(exc).__name__}: {exc}"
                )
    clouds: set[str] = set()
    for claims in answers:
        if isinstance(claims, list | tuple):
            clouds.update(c for c in claims if isinstance(c, str) and c)
    return next(iter(clouds)) if len(clouds) == 1 else None


def base_url_for(pm: pluggy.PluginManager, provider: str, env: Mapping[str, str]) -> str:
    """``DATASOURCES_<NAME>_URL`` when set, else the plugin's default (no trailing slash)."""
    key = "DATASOURCES_" + provider.upper().replace("-", "_") + "_URL"
    url = env.get(key)
    if not url:
        try:
            url = pm.hook.datasources_base_url(provider=provider)
        except Exception:  # a broken plugin: the provider gets no default URL (its fetch decides)
            url = None
    return url.rstrip("/") if isinstance(url, str) else ""


def _stderr_log(line: str) -> None:
    sys.stderr.write(f"datasources: {line}\n")


def _prefixed(log: Callable[[str], None], provider: str) -> Callable[[str], None]:
    def write(line: str) -> None:
        log(f"{provider}: {line}")

    return write


def _run_probe(pm: pluggy.PluginManager, probe: _Probe, ctx: FetchContext) -> None:
    from datasources.userdata import UserdataError, decode_userdata

    start = time.monotonic()
    try:
        md = pm.hook.datasources_fetch(provider=probe.provider, ctx=ctx)
        if md is None:
            probe.outcome, probe.detail = "error", "no plugin implements this provider"
        elif not isinstance(md, Metadata):
            probe.outcome, probe.detail = "error", f"bug: fetch returned {type(md).__name__}"
        else:
            md.provider = probe.provider
            _drop_unprintable(md, ctx.log)
            md.userdata = decode_userdata(md.userdata)
            probe.metadata = md
            if md.userdata is not None:
                probe.outcome, probe.detail = "userdata", f"{len(md.userdata)} bytes"
            else:
                probe.outcome, probe.detail = "detected", "no userdata"
    except NotDetected as exc:
        probe.outcome, probe.detail = "absent", str(exc) or "not detected"
    except ProviderError as exc:
        probe.outcome, probe.detail = "error", str(exc) or "failed"
    except UserdataError as exc:
        probe.outcome, probe.detail = "error", str(exc)
    except Exception as exc:  # a provider bug must not end the search
        probe.outcome, probe.detail = "error", f"bug: {type(exc).__name__}: {exc}"
    finally:
        probe.elapsed_ms = round((time.monotonic() - start) * 1000)
        probe.done.set()


# Metadata fields that become one-line files (and the node's hostname): no control characters.
_ONE_LINE_FIELDS = (
    "instance_id",
    "hostname",
    "local_hostname",
    "region",
    "zone",
    "public_ipv4",
    "local_ipv4",
)


def _drop_unprintable(md: Metadata, log: Callable[[str], None]) -> None:
    """Clear one-line fields and drop keys that hold control characters (a newline in a hostname
    would become a second line in ``local_hostname``); each is logged."""
    for name in _ONE_LINE_FIELDS:
        value = getattr(md, name)
        if value is not None and (not isinstance(value, str) or not value.isprintable()):
            log(f"ignoring {name}: {str(value)[:60]!r} is not one printable line")
            setattr(md, name, None)
    keys = [k for k in md.ssh_keys if isinstance(k, str) and k.isprintable()]
    if len(keys) != len(md.ssh_keys):
        log(f"ignoring {len(md.ssh_keys) - len(keys)} ssh key(s) that are not one printable line")
        md.ssh_keys = keys


def fetch(
    providers: Sequence[str],
    timeout: float,
    env: Mapping[str, str] | None = None,
    dmi: Dmi | None = None,
    *,
    pm: pluggy.PluginManager | None = None,
    log: Callable[[str], None] | None = None,
    started: float | None = None,
) -> FetchResult:
    """Find the node's userdata and metadata by the ordered rule of DESIGN.md.

    :param providers: provider names or aliases, in order of preference (must not be empty).
    :param timeout: overall deadline in seconds.
    :param env: environment for ``DATASOURCES_*`` overrides (default: the process environment).
    :param dmi: the machine's DMI (default: read from ``/sys/class/dmi/id``).
    :param pm: a plugin manager (default: built here, entry points only when needed).
    :param log: receives one line per attempt and the providers' own log lines.
    :param started: ``time.monotonic()`` value the timeout counts from (default: now); the CLI
        passes its process start so the whole run stays within ``timeout``.
    :raises UsageError: unknown provider, empty list, or a timeout not in (0, MAX_TIMEOUT].
    """
    env = os.environ if env is None else env
    log = log or _stderr_log
    if not providers:
        raise UsageError("no provider to probe")
    if not 0 < timeout <= MAX_TIMEOUT:
        raise UsageError(f"timeout must be more than 0 and at most {MAX_TIMEOUT:g} seconds, not {timeout}")
    if pm is None:
        pm = get_plugin_manager(load_entrypoints=needs_entrypoints(providers), env=env)
    table = provider_table(pm)
    order = resolve_providers(providers, table)
    end = (time.monotonic() if started is None else started) + timeout
    walk_deadline = end - min(OUTPUT_RESERVE, timeout / 10)
    deadline = walk_deadline - min(REPORT_MARGIN, timeout / 20)
    if dmi is None:
        from datasources.dmi import read_dmi

        dmi = read_dmi(env)
    claimed = dmi_claimed_cloud(pm, dmi, log)

    probes: list[_Probe] = []
    for name in order:
        probe = _Probe(name)
        probes.append(probe)
        cloud = table.info(name).cloud
        probe.claimed = claimed is not None and cloud == claimed
        if claimed is not None and cloud is not None and cloud != claimed:
            probe.outcome, probe.detail = "absent", f"skipped: DMI names {claimed}"
            probe.done.set()
            continue
        ctx = FetchContext(
            provider=name,
            base_url=base_url_for(pm, name, env),
            deadline=deadline,
            dmi=dmi,
            env=env,
            log=_prefixed(log, name),
        )
        threading.Thread(target=_run_probe, args=(pm, probe, ctx), name=f"probe-{name}", daemon=True).start()

    return _walk_in_order(probes, walk_deadline, log)


def _walk_in_order(probes: list[_Probe], deadline: float, log: Callable[[str], None]) -> FetchResult:
    """Decide by the ordered rule, waiting for each probe at most until ``deadline``."""
    attempts: list[Attempt] = []
    first_detected: Metadata | None = None
    for probe in probes:
        if not probe.done.wait(max(0.0, deadline - time.monotonic())):
            elapsed = round((time.monotonic() - probe.started) * 1000)
            if probe.claimed:
                attempt = Attempt(
                    probe.provider, "error", "no answer before the deadline (DMI names it)", elapsed
                )
            else:
                attempt = Attempt(probe.provider, "absent", "gave no answer before the deadline", elapsed)
        else:
            attempt = Attempt(probe.provider, probe.outcome, probe.detail, probe.elapsed_ms)
        attempts.append(attempt)
        log(attempt.describe())
        if attempt.outcome == "userdata":
            return FetchResult(probe.metadata, attempts)
        if attempt.outcome == "detected" and first_detected is None:
            first_detected = probe.metadata
    return FetchResult(first_detected, attempts)
