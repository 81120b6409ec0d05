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
from collections.abc import Callable, Mapping
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


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and what is wrong."""


def env_name(section: str, key: str) -> str:
    """The environment variable for ``section.key`` (``TALKSYNC_ZENDESK_API_TOKEN``)."""
    return f"TALKSYNC_{section}_{key}".upper()


# -- values a setting may take --------------------------------------------------------------


def _text(text: str) -> str:
    return text


def _requests_per_minute(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"expected requests per minute (a whole number above zero), got {value!r}")
    return value


def _parse_requests_per_minute(text: str) -> int:
    if not text.strip().isdigit():
        raise ValueError(f"expected requests per minute (a whole number above zero), got {text!r}")
    return _requests_per_minute(int(text))


def _timeout_seconds(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ValueError(f"expected seconds (a number above 0, at most 3600), got {value!r}")
    return float(value)


def _parse_timeout_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise ValueError(
            f"expected seconds (a number above 0, at most 3600), got {text!r}"
        ) from None
    return _timeout_seconds(seconds)


def _parse_switch(text: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return value == "true"


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
class _HttpFile:
    timeout: float | None = None


@attrs.frozen
class _SyncFile:
    name_collision: NameCollisionPolicy = NameCollisionPolicy.ADOPT
    full_reconcile_every: str = "24h"


@attrs.frozen
class _StateFile:
    path: str | None = None
    database_url_file: str | None = None


@attrs.frozen
class _ConfigFile:
    state: _StateFile = _StateFile()
    poweroffice: _PowerOfficeFile = _PowerOfficeFile()
    zendesk: _ZendeskFile = _ZendeskFile()
    sync: _SyncFile = _SyncFile()
    http: _HttpFile = _HttpFile()
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
            f"PowerOffice {name.replace('_', ' ')} is not set: set {setting.env}"
            f" (or {setting.file_key} in the config)"
            for setting in SETTINGS
            if setting.secret and setting.key.startswith("poweroffice.")
            for name in [setting.key.split(".")[1]]
            if not getattr(self, name)
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
                f"Zendesk is not configured: set {SETTING['zendesk.subdomain'].env} (or"
                " zendesk.subdomain or zendesk.base_url in the config)"
            )
        if not self.oauth_token:
            if not self.api_token:
                problems.append(
                    f"Zendesk token is not set: set {SETTING['zendesk.oauth_token'].env}, or"
                    f" {SETTING['zendesk.api_token'].env} with {SETTING['zendesk.email'].env}"
                )
            elif not self.email:
                problems.append(
                    "Zendesk API token needs the agent's e-mail: set"
                    f" {SETTING['zendesk.email'].env} (or zendesk.email in the config)"
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
    database_url: str | None = attrs.field(default=None, repr=False)
    """The PostgreSQL state store (``TALKSYNC_DATABASE_URL``) instead of the SQLite file; a
    secret, since it may carry the password."""
    tenant: str | None = None
    """The tenant of that database whose state this is (``None``: the single company's)."""

    @property
    def state_location(self) -> str:
        """Where the state lives, for messages: the database (no password) or the file."""
        if self.database_url:
            from adapters.postgres import describe

            where = describe(self.database_url)
            return where if self.tenant is None else f"{where} (tenant {self.tenant})"
        return str(self.state_path)

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


def _read_toml(path: Path) -> dict[str, Any]:
    """The TOML file at ``path`` as a dict; a secret written into it is an error naming it."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    problems = [
        f"{path}: {setting.key}: secrets are not read from the config file; set"
        f" {setting.env} or {setting.file_key} instead"
        for setting in SETTINGS
        if setting.secret
        for section, name in [setting.key.split(".")]
        if isinstance(raw.get(section), dict) and name in raw[section]
    ]
    if problems:
        raise ConfigError("\n".join(problems))
    return raw


def _structure(raw: Mapping[str, Any], source: str) -> _ConfigFile:
    """``raw`` as the file's shape; ConfigError names every bad key, prefixed by ``source``."""
    try:
        parsed = _CONVERTER.structure(raw, _ConfigFile)
    except Exception as exc:  # cattrs raises ClassValidationError and friends
        raise ConfigError("\n".join(_error_lines(exc, source))) from None
    unknown = sorted(set(parsed.flows) - set(DEFAULT_DATAFLOW.ids))
    if unknown:
        raise ConfigError(
            f"{source}: flows.{unknown[0]}: no such flow (flows are: "
            f"{', '.join(DEFAULT_DATAFLOW.ids)})"
        )
    for setting in SETTINGS:
        if setting.check is None:
            continue
        section, name = setting.key.split(".")
        value = getattr(getattr(parsed, section), name)
        if value is not None:
            try:
                setting.check(value)
            except ValueError as exc:
                raise ConfigError(f"{source}: {setting.key}: {exc}") from None
    for flow_id, flow in parsed.flows.items():
        if not 0.0 <= flow.delete_cap <= 1.0:
            raise ConfigError(
                f"{source}: flows.{flow_id}.delete_cap: must be a share between 0 and 1,"
                f" got {flow.delete_cap}"
            )
    return parsed


def read_config_file(path: Path) -> _ConfigFile:
    """The TOML file at ``path`` as the file's shape; ConfigError names every bad key."""
    return _structure(_read_toml(path), str(path))


# -- the settings table ----------------------------------------------------------------------


@attrs.frozen
class Setting:
    """One setting a person can change: the environment variable that sets it, its key in the
    config file (a secret's file holds only ``<key>_file``, the path of a file with the value),
    its default, how the variable's text is read, and what it is for.

    The loader, ``init``'s template and the README's table (checked by a test) all read this
    table, so a setting is spelled once.
    """

    env: str
    key: str
    default: str
    help: str
    parse: Callable[[str], object] = _text
    secret: bool = False
    path: bool = False
    """A path: from the file it is relative to the file, from the environment to the cwd."""
    check: Callable[[Any], object] | None = None
    """Raises ValueError (``expected …``) for a value out of range; ``parse`` applies it too."""
    example: str = ""
    """A value to show, commented out, in ``init``'s template when there is no default."""

    @property
    def file_key(self) -> str:
        """The key the config file may hold: the setting, or for a secret ``<key>_file``."""
        return f"{self.key}_file" if self.secret else self.key


def _setting(key: str, default: str, help: str, **kwargs: Any) -> Setting:
    section, name = key.split(".")
    return Setting(env_name(section, name), key, default, help, **kwargs)


SETTINGS: tuple[Setting, ...] = (
    _setting("poweroffice.application_key", "", "PowerOffice Go application key", secret=True),
    _setting("poweroffice.client_key", "", "PowerOffice Go client key", secret=True),
    _setting("poweroffice.subscription_key", "", "PowerOffice Go subscription key", secret=True),
    _setting("poweroffice.base_url", POWEROFFICE_BASE_URL, "API URL"),
    _setting("poweroffice.token_url", POWEROFFICE_TOKEN_URL, "token URL"),
    _setting("zendesk.subdomain", "", "acme for acme.zendesk.com", example="acme"),
    _setting(
        "zendesk.base_url", "", "instead of the subdomain", example="https://acme.zendesk.com"
    ),
    _setting("zendesk.email", "", "the agent, with an API token", example="agent@example.com"),
    _setting("zendesk.api_token", "", "Zendesk API token", secret=True),
    _setting(
        "zendesk.oauth_token",
        "",
        "Zendesk OAuth token (instead of e-mail and API token)",
        secret=True,
    ),
    Setting(
        "TALKSYNC_ZENDESK_RATE_LIMIT",
        "zendesk.rate_limit_per_minute",
        str(ZENDESK_RATE_LIMIT),
        "requests per minute of your plan",
        parse=_parse_requests_per_minute,
        check=_requests_per_minute,
    ),
    _setting(
        "zendesk.remove_old_emails",
        "false",
        "after an e-mail change, delete the old address (default: keep it as a secondary one)",
        parse=_parse_switch,
    ),
    Setting(
        "TALKSYNC_STATE", "state.path", str(DEFAULT_STATE_PATH), "the SQLite state file", path=True
    ),
    Setting(
        "TALKSYNC_DATABASE_URL",
        "state.database_url",
        "",
        "PostgreSQL instead of the SQLite file (postgresql://user@host/db)",
        secret=True,
    ),
    Setting(
        "TALKSYNC_HTTP_TIMEOUT",
        "http.timeout",
        "",
        "seconds to wait for either system's answer (adapters' own default: Zendesk 30,"
        " PowerOffice 60)",
        parse=_parse_timeout_seconds,
        check=_timeout_seconds,
        example="30",
    ),
)
"""Every setting the loader reads from the environment."""

SETTING = {setting.key: setting for setting in SETTINGS}
"""The settings by config key (``SETTING["zendesk.api_token"].env``)."""

_ZENDESK_ACCOUNT = ("zendesk.base_url", "zendesk.subdomain")
"""Either names the account; one given in the environment replaces both from the file."""


def _overlay_environment(raw: dict[str, Any], env: Mapping[str, str]) -> set[str]:
    """Put every non-secret setting the environment sets into ``raw`` (the parsed file), read
    by its parser; returns the keys so set. An unreadable value names its variable."""
    if any(env.get(SETTING[key].env) for key in _ZENDESK_ACCOUNT):
        zendesk = raw.get("zendesk")
        if isinstance(zendesk, dict):
            for key in _ZENDESK_ACCOUNT:
                zendesk.pop(key.split(".")[1], None)
    from_env = set()
    for setting in SETTINGS:
        text = env.get(setting.env)
        if setting.secret or not text:
            continue
        try:
            value = setting.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{setting.env}: {exc}") from None
        section, name = setting.key.split(".")
        table = raw.setdefault(section, {})
        if isinstance(table, dict):
            table[name] = value
        from_env.add(setting.key)
    return from_env


def _secret(
    env: Mapping[str, str], setting: Setting, file_path: str | None, base: Path
) -> str | None:
    value = env.get(setting.env)
    if value:
        return value
    if file_path is None:
        return None
    path = base / Path(file_path).expanduser()
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"{setting.file_key}: cannot read {path}: {exc.strerror}") from exc


def _subdomain_url(subdomain: str | None, name: str) -> str | None:
    if not subdomain:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]*", subdomain):
        raise ConfigError(
            f"{name}: {subdomain!r} is not a subdomain (for acme.zendesk.com use acme)"
        )
    return f"https://{subdomain}.zendesk.com"


def zendesk_account_url(subdomain: str | None, base_url: str | None, name: str) -> str | None:
    """The Zendesk account's URL from a URL or a subdomain (``name`` names the subdomain's
    setting in errors); the API URL people copy from the docs is accepted too."""
    # Most specific first: a URL beats a subdomain.
    url = base_url or _subdomain_url(subdomain, name)
    # The adapter adds /api/v2 to every path.
    return None if url is None else url.rstrip("/").removesuffix("/api/v2")


def _policy(file: _ConfigFile) -> SyncPolicy:
    return SyncPolicy(
        flows=dict(file.flows),
        name_collision=file.sync.name_collision,
        full_reconcile_every=parse_duration(
            file.sync.full_reconcile_every, what="sync.full_reconcile_every"
        ),
    )


POLICY_TABLES = ("sync", "flows")
"""The tables of ``talksync.toml`` that make a sync policy (a tenant's policies hold these)."""


def read_policies(text: str, source: str) -> SyncPolicy:
    """A sync policy from TOML text holding only ``[sync]`` and ``[flows.*]`` tables, checked
    as the config file is (ConfigError naming ``source`` and the key)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    other = sorted(set(raw) - set(POLICY_TABLES))
    if other:
        raise ConfigError(
            f"{source}: [{other[0]}] does not belong here: policies are the [sync] and"
            " [flows.*] tables of talksync.toml"
        )
    return _policy(_structure(raw, source))


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
    raw = _read_toml(path) if path is not None else {}
    from_env = _overlay_environment(raw, env)
    file = _structure(raw, str(path) if path is not None else "environment")
    base = path.parent if path is not None else Path()

    po, zd = file.poweroffice, file.zendesk
    poweroffice = PowerOfficeSettings(
        base_url=po.base_url,
        token_url=po.token_url,
        application_key=_secret(
            env, SETTING["poweroffice.application_key"], po.application_key_file, base
        ),
        client_key=_secret(env, SETTING["poweroffice.client_key"], po.client_key_file, base),
        subscription_key=_secret(
            env, SETTING["poweroffice.subscription_key"], po.subscription_key_file, base
        ),
    )
    zendesk_url = zendesk_account_url(
        zd.subdomain,
        zd.base_url,
        SETTING["zendesk.subdomain"].env
        if "zendesk.subdomain" in from_env
        else "zendesk.subdomain",
    )
    zendesk = ZendeskSettings(
        base_url=zendesk_url,
        email=zd.email,
        api_token=_secret(env, SETTING["zendesk.api_token"], zd.api_token_file, base),
        oauth_token=_secret(env, SETTING["zendesk.oauth_token"], zd.oauth_token_file, base),
        rate_limit_per_minute=zd.rate_limit_per_minute,
        remove_old_emails=zd.remove_old_emails,
    )
    for key, url in (
        ("poweroffice.base_url", poweroffice.base_url),
        ("poweroffice.token_url", poweroffice.token_url),
        ("zendesk.base_url", zendesk.base_url),
    ):
        if url is not None and not re.match(r"https?://[^/\s]+", url):
            name = SETTING[key].env if key in from_env else key
            raise ConfigError(f"{name}: {url!r} is not an http(s) URL")

    if state_path is None:
        if file.state.path is None:
            state_path = DEFAULT_STATE_PATH
        elif "state.path" in from_env:
            state_path = Path(file.state.path)
        else:
            state_path = base / Path(file.state.path).expanduser()

    database_url = _secret(env, SETTING["state.database_url"], file.state.database_url_file, base)
    if database_url is not None and not re.match(r"postgres(ql)?://", database_url):
        source = SETTING["state.database_url"]
        name = source.env if env.get(source.env) else source.file_key
        raise ConfigError(f"{name}: expected a postgresql:// URL, got another kind of address")

    policy = _policy(file)
    return Settings(poweroffice, zendesk, state_path, policy, path, file.http.timeout, database_url)


# -- the file `talksync init` writes ---------------------------------------------------------


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


def _toml_text(setting: Setting, text: str) -> str:
    value = setting.parse(text)
    if isinstance(value, bool):
        return str(value).lower()
    return repr(value) if isinstance(value, int | float) else f'"{value}"'


def _setting_line(setting: Setting) -> str:
    """One setting in the template: live at its default, else commented out with an example."""
    name = setting.file_key.split(".")[1]
    if setting.secret:
        line = f'# {name} = "secrets/{setting.key.replace(".", "-").replace("_", "-")}"'
    elif setting.default and not setting.path:
        line = f"{name} = {_toml_text(setting, setting.default)}"
    else:
        line = f"# {name} = {_toml_text(setting, setting.example or setting.default)}"
    return f"{line.ljust(46)} # {setting.help}"


def config_template() -> str:
    """A commented config file holding every setting at its default.

    Generated from ``SETTINGS``, the flows and ``FlowPolicy``'s defaults, so it cannot drift
    from what the loader reads; each flow gets only the policies that apply to it.
    """
    sections: dict[str, list[str]] = {}
    for setting in SETTINGS:
        sections.setdefault(setting.key.split(".")[0], []).append(_setting_line(setting))
    tables = "\n\n".join(f"[{name}]\n" + "\n".join(lines) for name, lines in sections.items())
    flows = "\n\n".join(_flow_template(flow_id) for flow_id in DEFAULT_DATAFLOW.ids)
    secrets = "\n".join(f"#   {v.env}: {v.help}" for v in SETTINGS if v.secret)
    others = "\n".join(
        f"#   {v.env}: {v.help}" + (f" (default {v.default})" if v.default else "")
        for v in SETTINGS
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
# PowerOffice Go's demo environment: https://goapi.poweroffice.net/Demo/v2 and
# .../Demo/OAuth/Token. Zendesk plans allow 200 (Team), 400 (Professional) or 700
# (Enterprise) requests per minute. Relative paths are relative to this file.

{tables}

[sync]
name_collision = "adopt"     # adopt | report
full_reconcile_every = "24h" # a full read catches deletes and drift

{flows}
"""
