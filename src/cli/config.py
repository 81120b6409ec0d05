"""Settings: a TOML file, overridden by the environment, structured by cattrs.

Secrets never come from the TOML file: they come from the environment or from a file whose
path the TOML names (``api_token_file``), so the config file can be committed or shared. A
secret found in the TOML is an error naming its key. Every error names the key (or variable)
and what was wrong with it.
"""

from __future__ import annotations

import enum
import re
import tomllib
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import attrs
import cattrs

from talkcore.dataflow import DEFAULT_DATAFLOW
from talkcore.policy import (
    ConflictPolicy,
    FirstLinkPolicy,
    FlowPolicy,
    NameCollisionPolicy,
    SyncPolicy,
)

DEFAULT_CONFIG_PATH = Path("talksync.toml")
DEFAULT_STATE_PATH = Path("talksync.db")
POWEROFFICE_BASE_URL = "https://goapi.poweroffice.net/v2"
POWEROFFICE_TOKEN_URL = "https://goapi.poweroffice.net/OAuth/Token"  # noqa: S105 - a URL
ZENDESK_RATE_LIMIT = 200
"""Requests per minute: Zendesk's smallest plan (Team); raise it to your plan's limit."""

SECRETS: Mapping[str, tuple[str, ...]] = {
    "poweroffice": ("application_key", "client_key", "subscription_key"),
    "zendesk": ("api_token", "oauth_token"),
}
"""The secret settings of each section; each comes from ``TALKSYNC_<SECTION>_<NAME>``."""


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is wrong."""


def env_name(section: str, key: str) -> str:
    """The environment variable for ``section.key`` (``TALKSYNC_ZENDESK_API_TOKEN``)."""
    return f"TALKSYNC_{section}_{key}".upper()


# -- the file's shape ------------------------------------------------------------------------


@attrs.frozen
class _PowerOfficeFile:
    base_url: str = POWEROFFICE_BASE_URL
    token_url: str = POWEROFFICE_TOKEN_URL
    application_key_file: str | None = None
    client_key_file: str | None = None
    subscription_key_file: str | None = None


@attrs.frozen
class _ZendeskFile:
    subdomain: str | None = None
    base_url: str | None = None
    email: str | None = None
    api_token_file: str | None = None
    oauth_token_file: str | None = None
    rate_limit_per_minute: int = ZENDESK_RATE_LIMIT
    remove_old_emails: bool = False


@attrs.frozen
class _SyncFile:
    name_collision: NameCollisionPolicy = NameCollisionPolicy.ADOPT
    full_reconcile_every: str = "24h"


@attrs.frozen
class _StateFile:
    path: str | None = None


@attrs.frozen
class _ConfigFile:
    state: _StateFile = _StateFile()
    poweroffice: _PowerOfficeFile = _PowerOfficeFile()
    zendesk: _ZendeskFile = _ZendeskFile()
    sync: _SyncFile = _SyncFile()
    # A flow's table is the core's FlowPolicy itself: same keys, same defaults.
    flows: dict[str, FlowPolicy] = attrs.field(factory=dict)


# -- the settings the rest of the CLI uses ---------------------------------------------------


@attrs.frozen
class PowerOfficeSettings:
    """Where PowerOffice Go is and the three keys to reach it (``None`` where not set)."""

    base_url: str = POWEROFFICE_BASE_URL
    token_url: str = POWEROFFICE_TOKEN_URL
    application_key: str | None = attrs.field(default=None, repr=False)
    client_key: str | None = attrs.field(default=None, repr=False)
    subscription_key: str | None = attrs.field(default=None, repr=False)

    def missing(self) -> list[str]:
        """What must still be set before PowerOffice can be reached, one line each."""
        return [
            f"PowerOffice {key.replace('_', ' ')} is not set: set {env_name('poweroffice', key)}"
            f" (or poweroffice.{key}_file in the config)"
            for key in SECRETS["poweroffice"]
            if not getattr(self, key)
        ]


@attrs.frozen
class ZendeskSettings:
    """Where Zendesk is, who we are there, and the token (API token or OAuth)."""

    base_url: str | None = None
    email: str | None = None
    api_token: str | None = attrs.field(default=None, repr=False)
    oauth_token: str | None = attrs.field(default=None, repr=False)
    rate_limit_per_minute: int = ZENDESK_RATE_LIMIT
    remove_old_emails: bool = False
    """Delete the address an e-mail change replaced (default: keep it as a secondary address)."""

    def missing(self) -> list[str]:
        """What must still be set before Zendesk can be reached, one line each."""
        problems = []
        if not self.base_url:
            problems.append(
                "Zendesk is not configured: set TALKSYNC_ZENDESK_SUBDOMAIN (or zendesk.subdomain"
                " or zendesk.base_url in the config)"
            )
        if not self.oauth_token:
            if not self.api_token:
                problems.append(
                    "Zendesk token is not set: set TALKSYNC_ZENDESK_OAUTH_TOKEN, or"
                    " TALKSYNC_ZENDESK_API_TOKEN with TALKSYNC_ZENDESK_EMAIL"
                )
            elif not self.email:
                problems.append(
                    "Zendesk API token needs the agent's e-mail: set TALKSYNC_ZENDESK_EMAIL"
                    " (or zendesk.email in the config)"
                )
        return problems


@attrs.frozen
class Settings:
    """Everything a command needs, resolved: endpoints, secrets, state file and sync policy."""

    poweroffice: PowerOfficeSettings = attrs.field(factory=PowerOfficeSettings)
    zendesk: ZendeskSettings = attrs.field(factory=ZendeskSettings)
    state_path: Path = DEFAULT_STATE_PATH
    policy: SyncPolicy = attrs.field(factory=SyncPolicy)
    config_path: Path | None = None
    http_timeout: float | None = None
    """Seconds to wait for either system's answer (``TALKSYNC_HTTP_TIMEOUT``); adapters' own
    defaults (Zendesk 30 s, PowerOffice 60 s) when unset."""

    def missing(self) -> list[str]:
        """Every setting still missing before both systems can be reached."""
        return self.poweroffice.missing() + self.zendesk.missing()


# -- loading ---------------------------------------------------------------------------------

_T = TypeVar("_T")


def _strict(kind: type[_T], accepts: tuple[type, ...], what: str) -> Any:
    # cattrs would turn "false" into True and "5" into 5; a config file should say what it means.
    def structure(value: object, _: object) -> _T:
        if isinstance(value, bool) and kind is not bool:
            raise ValueError(f"expected {what}, got {value!r}")
        if not isinstance(value, accepts):
            raise ValueError(f"expected {what}, got {value!r}")
        return kind(value)  # type: ignore[call-arg]

    return structure


def _choice(enum_type: type[enum.Enum]) -> Any:
    def structure(value: object, _: object) -> enum.Enum:
        try:
            return enum_type(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in enum_type)
            raise ValueError(f"expected one of {choices}, got {value!r}") from None

    return structure


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True)
    conv.register_structure_hook(str, _strict(str, (str,), "a string"))
    conv.register_structure_hook(bool, _strict(bool, (bool,), "true or false"))
    conv.register_structure_hook(int, _strict(int, (int,), "a whole number"))
    conv.register_structure_hook(float, _strict(float, (int, float), "a number"))
    for enum_type in (ConflictPolicy, FirstLinkPolicy, NameCollisionPolicy):
        conv.register_structure_hook(enum_type, _choice(enum_type))
    return conv


_CONVERTER = _converter()


def _describe(exc: BaseException, type_: type | None) -> str:
    # Our hooks raise ValueError with the whole story ("expected one of ..."); keep it.
    if isinstance(exc, ValueError) and str(exc).startswith("expected"):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _error_lines(exc: BaseException, source: str) -> list[str]:
    """cattrs' nested errors as ``source: key.path: what was wrong`` lines."""
    lines = []
    for message in cattrs.transform_error(exc, path="$", format_exception=_describe):
        text, _, where = message.rpartition(" @ ")
        key = where.removeprefix("$").removeprefix(".")
        key = re.sub(r"\['([^']*)'\]", r".\1", key).lstrip(".")
        if text.startswith("extra fields found"):
            text = text.replace("extra fields found", "unknown setting(s)")
        lines.append(f"{source}: {key + ': ' if key else ''}{text}")
    return lines


def parse_duration(text: str, *, what: str = "duration") -> timedelta:
    """``"90s"``, ``"5m"``, ``"1h30m"``, ``"2d"`` as a timedelta; a clear error otherwise."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    parts = re.findall(r"(\d+)\s*([smhd])", text.strip().lower())
    rebuilt = "".join(n + u for n, u in parts)
    if not parts or rebuilt != re.sub(r"\s+", "", text.strip().lower()):
        raise ConfigError(f"{what}: {text!r} is not a duration (use e.g. 90s, 5m, 1h30m, 2d)")
    delta = timedelta()
    for number, unit in parts:
        delta += timedelta(**{units[unit]: int(number)})
    if delta <= timedelta(0):
        raise ConfigError(f"{what}: {text!r} must be longer than zero")
    return delta


def read_config_file(path: Path) -> _ConfigFile:
    """The TOML file at ``path`` as the file's shape; ConfigError names every bad key."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    problems = [
        f"{path}: {section}.{key}: secrets are not read from the config file; set"
        f" {env_name(section, key)} or {section}.{key}_file instead"
        for section, keys in SECRETS.items()
        for key in keys
        if isinstance(raw.get(section), dict) and key in raw[section]
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    try:
        parsed = _CONVERTER.structure(raw, _ConfigFile)
    except Exception as exc:  # cattrs raises ClassValidationError and friends
        raise ConfigError("\n".join(_error_lines(exc, str(path)))) from None
    unknown = sorted(set(parsed.flows) - set(DEFAULT_DATAFLOW.ids))
    if unknown:
        raise ConfigError(
            f"{path}: flows.{unknown[0]}: no such flow (flows are: "
            f"{', '.join(DEFAULT_DATAFLOW.ids)})"
        )
    for flow_id, flow in parsed.flows.items():
        if not 0.0 <= flow.delete_cap <= 1.0:
            raise ConfigError(
                f"{path}: flows.{flow_id}.delete_cap: must be a share between 0 and 1,"
                f" got {flow.delete_cap}"
            )
    if parsed.zendesk.rate_limit_per_minute <= 0:
        raise ConfigError(f"{path}: zendesk.rate_limit_per_minute: must be more than zero")
    return parsed


def _secret(
    env: Mapping[str, str], section: str, key: str, file_path: str | None, base: Path
) -> str | None:
    value = env.get(env_name(section, key))
    if value:
        return value
    if file_path is None:
        return None
    path = base / Path(file_path).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"{section}.{key}_file: cannot read {path}: {exc.strerror}") from exc


def _subdomain_url(subdomain: str | None, name: str) -> str | None:
    if not subdomain:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", subdomain):
        raise ConfigError(
            f"{name}: {subdomain!r} is not a subdomain (for acme.zendesk.com use acme)"
        )
    return f"https://{subdomain}.zendesk.com"


def load_settings(
    config_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    *,
    state_path: Path | None = None,
) -> Settings:
    """Settings from ``config_path`` (default ``talksync.toml`` if present) and ``env``.

    Precedence, highest first: ``state_path`` (the ``--state`` option), the environment, the
    file, the defaults. Relative paths in the file are relative to the file's directory.
    """
    env = {} if env is None else env
    if config_path is not None and not config_path.is_file():
        raise ConfigError(f"config file {config_path} does not exist (create one: talksync init)")
    path = config_path or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.is_file() else None)
    file = read_config_file(path) if path is not None else _ConfigFile()
    base = path.parent if path is not None else Path()

    po, zd = file.poweroffice, file.zendesk
    poweroffice = PowerOfficeSettings(
        base_url=env.get("TALKSYNC_POWEROFFICE_BASE_URL") or po.base_url,
        token_url=env.get("TALKSYNC_POWEROFFICE_TOKEN_URL") or po.token_url,
        application_key=_secret(
            env, "poweroffice", "application_key", po.application_key_file, base
        ),
        client_key=_secret(env, "poweroffice", "client_key", po.client_key_file, base),
        subscription_key=_secret(
            env, "poweroffice", "subscription_key", po.subscription_key_file, base
        ),
    )
    # Most specific first: a URL or subdomain from the environment beats either from the file.
    zendesk_url = (
        env.get("TALKSYNC_ZENDESK_BASE_URL")
        or _subdomain_url(env.get("TALKSYNC_ZENDESK_SUBDOMAIN"), "TALKSYNC_ZENDESK_SUBDOMAIN")
        or zd.base_url
        or _subdomain_url(zd.subdomain, "zendesk.subdomain")
    )
    if zendesk_url is not None:
        # The adapter adds /api/v2 to every path; accept the API URL people copy from the docs.
        zendesk_url = zendesk_url.rstrip("/").removesuffix("/api/v2")
    rate_text = env.get("TALKSYNC_ZENDESK_RATE_LIMIT")
    rate = zd.rate_limit_per_minute
    if rate_text:
        if not rate_text.strip().isdigit() or int(rate_text) <= 0:
            raise ConfigError(
                f"TALKSYNC_ZENDESK_RATE_LIMIT: expected requests per minute (a whole number"
                f" above zero), got {rate_text!r}"
            )
        rate = int(rate_text)
    zendesk = ZendeskSettings(
        base_url=zendesk_url,
        email=env.get("TALKSYNC_ZENDESK_EMAIL") or zd.email,
        api_token=_secret(env, "zendesk", "api_token", zd.api_token_file, base),
        oauth_token=_secret(env, "zendesk", "oauth_token", zd.oauth_token_file, base),
        rate_limit_per_minute=rate,
        remove_old_emails=zd.remove_old_emails,
    )
    for name, url in (
        ("poweroffice.base_url", poweroffice.base_url),
        ("poweroffice.token_url", poweroffice.token_url),
        ("zendesk.base_url", zendesk.base_url),
    ):
        if url is not None and not re.match(r"https?://[^/\s]+", url):
            raise ConfigError(f"{name}: {url!r} is not an http(s) URL")

    if state_path is None:
        from_env = env.get("TALKSYNC_STATE")
        if from_env:
            state_path = Path(from_env)
        elif file.state.path is not None:
            state_path = base / Path(file.state.path).expanduser()
        else:
            state_path = DEFAULT_STATE_PATH

    policy = SyncPolicy(
        flows=dict(file.flows),
        name_collision=file.sync.name_collision,
        full_reconcile_every=parse_duration(
            file.sync.full_reconcile_every, what="sync.full_reconcile_every"
        ),
    )
    return Settings(
        poweroffice, zendesk, state_path, policy, path, _timeout(env.get("TALKSYNC_HTTP_TIMEOUT"))
    )


def _timeout(text: str | None) -> float | None:
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds <= 3600:
        raise ConfigError(
            "TALKSYNC_HTTP_TIMEOUT: expected seconds (a number above 0, at most 3600),"
            f" got {text!r}"
        )
    return seconds


# -- the file `talksync init` writes ---------------------------------------------------------


@attrs.frozen
class Variable:
    """One environment variable the loader reads: its name, the config key it overrides (or
    ``None`` when the file cannot hold it), the default, and what it is for."""

    name: str
    key: str | None
    default: str
    help: str
    secret: bool = False


VARIABLES: tuple[Variable, ...] = (
    Variable(
        env_name("poweroffice", "application_key"),
        "poweroffice.application_key_file",
        "",
        "PowerOffice Go application key",
        secret=True,
    ),
    Variable(
        env_name("poweroffice", "client_key"),
        "poweroffice.client_key_file",
        "",
        "PowerOffice Go client key",
        secret=True,
    ),
    Variable(
        env_name("poweroffice", "subscription_key"),
        "poweroffice.subscription_key_file",
        "",
        "PowerOffice Go subscription key",
        secret=True,
    ),
    Variable(
        "TALKSYNC_POWEROFFICE_BASE_URL", "poweroffice.base_url", POWEROFFICE_BASE_URL, "API URL"
    ),
    Variable(
        "TALKSYNC_POWEROFFICE_TOKEN_URL",
        "poweroffice.token_url",
        POWEROFFICE_TOKEN_URL,
        "token URL",
    ),
    Variable("TALKSYNC_ZENDESK_SUBDOMAIN", "zendesk.subdomain", "", "acme for acme.zendesk.com"),
    Variable("TALKSYNC_ZENDESK_BASE_URL", "zendesk.base_url", "", "instead of the subdomain"),
    Variable("TALKSYNC_ZENDESK_EMAIL", "zendesk.email", "", "the agent, with an API token"),
    Variable(
        env_name("zendesk", "api_token"),
        "zendesk.api_token_file",
        "",
        "Zendesk API token",
        secret=True,
    ),
    Variable(
        env_name("zendesk", "oauth_token"),
        "zendesk.oauth_token_file",
        "",
        "Zendesk OAuth token (instead of e-mail and API token)",
        secret=True,
    ),
    Variable(
        "TALKSYNC_ZENDESK_RATE_LIMIT",
        "zendesk.rate_limit_per_minute",
        str(ZENDESK_RATE_LIMIT),
        "requests per minute of your plan",
    ),
    Variable("TALKSYNC_STATE", "state.path", str(DEFAULT_STATE_PATH), "the SQLite state file"),
    Variable(
        "TALKSYNC_HTTP_TIMEOUT", None, "", "seconds to wait for an answer (adapters' own default)"
    ),
)
"""Every variable the loader reads; ``init``'s template and the README's table (tested) list
these."""


_POLICY_COMMENTS: Mapping[str, str] = {
    "conflict": "both sides changed a field: {choices}",
    "first_link": "a pair's first sync, values differ: {choices}",
    "create": "create counterparts of unlinked records",
    "propagate_deletes": "delete the counterpart when a linked record is deleted",
    "delete_cap": "stop propagating when a run would delete more than this share",
    "allow_moves": "allow moving a record to another customer",
}


def _policy_applies(name: str, flow_id: str) -> bool:
    """Whether the flow policy setting ``name`` can change anything in flow ``flow_id``."""
    flow = DEFAULT_DATAFLOW.flow(flow_id)
    if name in ("conflict", "first_link"):
        return bool(flow.properties)  # no synced property, no value to decide
    if name == "create":
        return flow.creates_in_zendesk or flow.creates_in_poweroffice
    if name == "allow_moves":
        return any(p.is_reference for p in flow.properties)
    return True


def _toml_value(value: object) -> str:
    if isinstance(value, enum.Enum):
        return f'"{value.value}"'
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.2f}"
    return repr(value)


def _flow_template(flow_id: str) -> str:
    """The policy table of one flow: every ``FlowPolicy`` setting at its default, each only
    where it applies (read from the class, so a new setting cannot be left out)."""
    default = FlowPolicy()
    lines = [f"[flows.{flow_id}]"]
    for field in attrs.fields(FlowPolicy):
        if not _policy_applies(field.name, flow_id):
            continue
        value = getattr(default, field.name)
        choices = (
            " | ".join(str(m.value) for m in type(value)) if isinstance(value, enum.Enum) else ""
        )
        comment = _POLICY_COMMENTS.get(field.name, "").format(choices=choices)
        setting = f"{field.name} = {_toml_value(value)}"
        lines.append(f"{setting.ljust(28)} # {comment}" if comment else setting)
    return "\n".join(lines)


def config_template() -> str:
    """A commented config file holding every setting at its default.

    Generated from ``VARIABLES``, the flows and ``FlowPolicy``'s defaults, so it cannot drift
    from what the loader reads; each flow gets only the policies that apply to it.
    """
    flows = "\n\n".join(_flow_template(flow_id) for flow_id in DEFAULT_DATAFLOW.ids)
    secrets = "\n".join(f"#   {v.name}: {v.help}" for v in VARIABLES if v.secret)
    others = "\n".join(
        f"#   {v.name}: {v.help}" + (f" (default {v.default})" if v.default else "")
        for v in VARIABLES
        if not v.secret
    )
    return f"""\
# talksync configuration. Every setting is shown at its default.
# Secrets are never read from this file. Set them in the environment
# (Zendesk: e-mail with API token, or an OAuth token):
{secrets}
# or name a file holding each one (the *_file settings below).
# These variables override this file:
{others}

[state]
# path = "talksync.db"       # the SQLite state file (relative to this file)

[poweroffice]
base_url = "{POWEROFFICE_BASE_URL}"    # demo: https://goapi.poweroffice.net/Demo/v2
token_url = "{POWEROFFICE_TOKEN_URL}"  # demo: .../Demo/OAuth/Token
# application_key_file = "secrets/poweroffice-application-key"
# client_key_file = "secrets/poweroffice-client-key"
# subscription_key_file = "secrets/poweroffice-subscription-key"

[zendesk]
# subdomain = "acme"          # for https://acme.zendesk.com
# base_url = "https://acme.zendesk.com"
# email = "agent@example.com" # with an API token
# api_token_file = "secrets/zendesk-api-token"
# oauth_token_file = "secrets/zendesk-oauth-token"
# Requests per minute: your plan's limit (Team 200, Professional 400, Enterprise 700).
rate_limit_per_minute = {ZENDESK_RATE_LIMIT}
# After an e-mail change the old address stays on the user as a secondary address, so mail
# from it still reaches the same person; true deletes it (only the address that was replaced).
remove_old_emails = false

[sync]
name_collision = "adopt"     # adopt | report
full_reconcile_every = "24h" # a full read catches deletes and drift

{flows}
"""
