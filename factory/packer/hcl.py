"""Just enough HCL2 for Packer: read the ``variable`` blocks of a template directory, turn ``--var``
text into typed values, and write a ``.pkrvars.hcl`` file whose strings are escaped so that no value
can end its string, add an attribute or start a template sequence (``${`` / ``%{``)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

HclValue = str | int | float | bool | list[str] | dict[str, str]

_VARIABLE_BLOCK = re.compile(r'^variable\s+"([A-Za-z_][A-Za-z0-9_-]*)"\s*\{(.*?)^\}', re.M | re.S)
_TYPE = re.compile(r"^\s*type\s*=\s*(.+?)\s*$", re.M)
_DEFAULT = re.compile(r"^\s*default\s*=", re.M)
_SENSITIVE = re.compile(r"^\s*sensitive\s*=\s*true\s*$", re.M)
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TYPES = ("string", "number", "bool", "list(string)", "map(string)")


class HclError(ValueError):
    """A value that does not fit its variable's type, or a template the reader cannot follow."""


@dataclass(frozen=True)
class Variable:
    """One ``variable`` block: its name, type (one of :data:`_TYPES`), and whether it is required."""

    name: str
    type: str
    required: bool
    sensitive: bool = False


def declared_variables(template_dir: Path) -> dict[str, Variable]:
    """Every ``variable`` declared in the ``*.pkr.hcl`` files of ``template_dir`` (symlinks followed)."""
    found: dict[str, Variable] = {}
    for path in sorted(template_dir.glob("*.pkr.hcl")):
        for match in _VARIABLE_BLOCK.finditer(path.read_text(encoding="utf-8")):
            name, body = match.group(1), match.group(2)
            type_match = _TYPE.search(body)
            var_type = type_match.group(1) if type_match else "string"
            if var_type not in _TYPES:
                raise HclError(f"{path}: variable {name!r} has type {var_type}, which render cannot write")
            if name in found:
                raise HclError(f"{path}: variable {name!r} is declared twice")
            found[name] = Variable(
                name, var_type, required=not _DEFAULT.search(body), sensitive=bool(_SENSITIVE.search(body))
            )
    return found


def parse_value(text: str, var_type: str) -> HclValue:
    """``--var`` text -> a value of ``var_type``. Lists: ``a,b`` or JSON; maps: ``k=v,k2=v2`` or JSON."""
    if var_type == "string":
        return text
    if var_type == "bool":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise HclError(f"expected true or false, got {text!r}")
    if var_type == "number":
        try:
            number = float(text)
        except ValueError:
            raise HclError(f"expected a number, got {text!r}") from None
        if not math.isfinite(number):
            raise HclError(f"expected a finite number, got {text!r}")
        return int(number) if number.is_integer() else number
    stripped = text.strip()
    if var_type == "list(string)":
        if stripped.startswith("["):
            items = _json(stripped)
            if not isinstance(items, list):
                raise HclError("expected a JSON list")
            return [_string_item(i) for i in items]
        return [item.strip() for item in stripped.split(",") if item.strip()]
    if stripped.startswith("{"):
        obj = _json(stripped)
        if not isinstance(obj, dict):
            raise HclError("expected a JSON object")
        return {str(k): _string_item(v) for k, v in obj.items()}
    out: dict[str, str] = {}
    for pair in filter(None, (p.strip() for p in stripped.split(","))):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HclError(f"expected KEY=VALUE[,KEY=VALUE...] or a JSON object, got {text!r}")
        out[key.strip()] = value.strip()
    return out


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise HclError(f"not valid JSON: {exc.msg}") from None


def _string_item(value: object) -> str:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    raise HclError(f"expected text, got {value!r}")


def hcl_string(text: str) -> str:
    """``text`` as an HCL2 quoted string literal (quotes, backslashes, controls, ``${`` and ``%{``)."""
    out = ['"']
    i = 0
    while i < len(text):
        ch = text[i]
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if ch in "$%" and nxt == "{":
            out.append(ch * 2)  # $${ and %%{ are the literal forms
        elif ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
        i += 1
    out.append('"')
    return "".join(out)


def hcl_value(value: HclValue) -> str:
    """An HCL2 expression for ``value`` (strings escaped, map keys always quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        body = "".join(f"  {hcl_string(k)} = {hcl_string(v)}\n" for k, v in sorted(value.items()))
        return "{\n" + body + "}"
    if isinstance(value, Sequence):
        return "[" + ", ".join(hcl_string(item) for item in value) + "]"
    raise HclError(f"cannot write {value!r} as HCL")


def render_var_file(values: Mapping[str, HclValue], header: str = "") -> str:
    """The text of a ``.pkrvars.hcl`` file: one ``name = value`` line (or block) per variable."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    for name in sorted(values):
        if not _IDENT.match(name):
            raise HclError(f"{name!r} is not a variable name")
        lines.append(f"{name} = {hcl_value(values[name])}")
    return "\n".join(lines) + "\n"
