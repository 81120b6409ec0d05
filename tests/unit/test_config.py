"""Settings from the TOML file and the environment, and the errors a person sees."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from cli.config import (
    DEFAULT_STATE_PATH,
    ConfigError,
    Settings,
    config_template,
    load_settings,
    parse_duration,
)
from talkcore.policy import ConflictPolicy, FlowPolicy, NameCollisionPolicy

SECRET_ENV = {
    "TALKSYNC_POWEROFFICE_APPLICATION_KEY": "app-secret",
    "TALKSYNC_POWEROFFICE_CLIENT_KEY": "client-secret",
    "TALKSYNC_POWEROFFICE_SUBSCRIPTION_KEY": "sub-secret",
    "TALKSYNC_ZENDESK_SUBDOMAIN": "acme",
    "TALKSYNC_ZENDESK_EMAIL": "agent@acme.no",
    "TALKSYNC_ZENDESK_API_TOKEN": "zd-secret",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "talksync.toml"
    path.write_text(text)
    return path


def error_of(path: Path, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env or {})
    return str(info.value)


def test_the_template_loads_as_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, config_template()), {})
    defaults = Settings()
    assert settings.poweroffice == defaults.poweroffice
    assert settings.zendesk == defaults.zendesk
    assert settings.state_path == DEFAULT_STATE_PATH
    assert all(p == FlowPolicy() for p in settings.policy.flows.values())
    assert settings.policy.name_collision is NameCollisionPolicy.ADOPT
    assert settings.policy.full_reconcile_every == timedelta(hours=24)


def test_the_template_names_every_secret_variable() -> None:
    text = config_template()
    for name in SECRET_ENV:
        if name != "TALKSYNC_ZENDESK_SUBDOMAIN":
            assert name in text


def test_per_flow_policies_become_a_sync_policy(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[sync]
name_collision = "report"
full_reconcile_every = "1h30m"
[flows.customers-organizations]
conflict = "manual"
propagate_deletes = true
delete_cap = 0.25
[flows.contact-persons-users]
allow_moves = true
""",
    )
    policy = load_settings(path, {}).policy
    assert policy.for_flow("customers-organizations") == FlowPolicy(
        conflict=ConflictPolicy.MANUAL, propagate_deletes=True, delete_cap=0.25
    )
    assert policy.for_flow("contact-persons-users").allow_moves
    assert policy.for_flow("departments-organizations") == FlowPolicy()
    assert policy.name_collision is NameCollisionPolicy.REPORT
    assert policy.full_reconcile_every == timedelta(hours=1, minutes=30)


def test_secrets_come_from_the_environment_and_stay_out_of_reprs() -> None:
    settings = load_settings(None, SECRET_ENV)
    assert settings.poweroffice.client_key == "client-secret"
    assert settings.zendesk.api_token == "zd-secret"
    assert settings.zendesk.base_url == "https://acme.zendesk.com"
    assert settings.missing() == []
    for secret in ("app-secret", "client-secret", "sub-secret", "zd-secret"):
        assert secret not in repr(settings)


def test_secrets_can_come_from_files_named_in_the_config(tmp_path: Path) -> None:
    (tmp_path / "token").write_text("from-file\n")
    path = write(tmp_path, '[zendesk]\napi_token_file = "token"\n')
    assert load_settings(path, {}).zendesk.api_token == "from-file"
    env = {"TALKSYNC_ZENDESK_API_TOKEN": "from-env"}
    assert load_settings(path, env).zendesk.api_token == "from-env"


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    path = write(tmp_path, '[poweroffice]\nclient_key_file = "nope"\n')
    assert "poweroffice.client_key_file: cannot read" in error_of(path)


@pytest.mark.parametrize(
    ("section", "key", "variable"),
    [
        ("poweroffice", "client_key", "TALKSYNC_POWEROFFICE_CLIENT_KEY"),
        ("zendesk", "api_token", "TALKSYNC_ZENDESK_API_TOKEN"),
        ("zendesk", "oauth_token", "TALKSYNC_ZENDESK_OAUTH_TOKEN"),
    ],
)
def test_a_secret_in_the_toml_is_an_error_naming_it(
    tmp_path: Path, section: str, key: str, variable: str
) -> None:
    message = error_of(write(tmp_path, f'[{section}]\n{key} = "hunter2"\n'))
    assert f"{section}.{key}" in message
    assert variable in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        (
            '[zendesk]\nrate_limit_per_minute = "fast"\n',
            "zendesk.rate_limit_per_minute: expected a whole number, got 'fast'",
        ),
        (
            '[zendesk]\nremove_old_emails = "yes"\n',
            "zendesk.remove_old_emails: expected true or false, got 'yes'",
        ),
        (
            '[flows.customers-organizations]\nconflict = "loudest"\n',
            "flows.customers-organizations.conflict: expected one of 'newest'",
        ),
        (
            '[flows.customers-organizations]\ncreate = "no"\n',
            "flows.customers-organizations.create: expected true or false",
        ),
        ('[flows.customers]\nconflict = "manual"\n', "flows.customers: no such flow"),
        ('[zendesk]\ncolour = "blue"\n', "zendesk: unknown setting(s) (colour)"),
        (
            "[flows.departments-organizations]\ndelete_cap = 2\n",
            "flows.departments-organizations.delete_cap: must be a share between 0 and 1",
        ),
        (
            '[sync]\nfull_reconcile_every = "often"\n',
            "sync.full_reconcile_every: 'often' is not a duration",
        ),
        ('[zendesk]\nsubdomain = "acme.zendesk.com"\n', "zendesk.subdomain:"),
        ('[poweroffice]\nbase_url = "goapi.poweroffice.net"\n', "poweroffice.base_url:"),
        ("[zendesk\n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_key_and_the_problem(
    tmp_path: Path, toml: str, expected: str
) -> None:
    assert expected in error_of(write(tmp_path, toml))


def test_a_bad_rate_limit_in_the_environment_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="TALKSYNC_ZENDESK_RATE_LIMIT"):
        load_settings(None, {"TALKSYNC_ZENDESK_RATE_LIMIT": "lots"})


@pytest.mark.parametrize("text", ["soon", "0", "-5", "99999"])
def test_a_bad_http_timeout_names_the_variable(text: str) -> None:
    with pytest.raises(ConfigError, match="TALKSYNC_HTTP_TIMEOUT"):
        load_settings(None, {"TALKSYNC_HTTP_TIMEOUT": text})


def test_the_http_timeout_comes_from_the_environment() -> None:
    assert load_settings(None, {"TALKSYNC_HTTP_TIMEOUT": "2.5"}).http_timeout == 2.5
    assert load_settings(None, {}).http_timeout is None


@pytest.mark.parametrize(
    ("toml", "error"),
    [
        ("[http]\ntimeout = 0\n", "http.timeout: expected seconds"),
        ("[zendesk]\nrate_limit_per_minute = 0\n", "zendesk.rate_limit_per_minute: expected"),
    ],
)
def test_a_bad_value_in_the_file_names_its_key_with_the_variables_words(
    tmp_path: Path, toml: str, error: str
) -> None:
    """The file and the environment share one check per setting, so both say the same."""
    path = tmp_path / "talksync.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=error):
        load_settings(path, {})


def test_the_file_sets_the_http_timeout_and_the_environment_beats_it(tmp_path: Path) -> None:
    path = tmp_path / "talksync.toml"
    path.write_text("[http]\ntimeout = 12\n")
    assert load_settings(path, {}).http_timeout == 12.0
    assert load_settings(path, {"TALKSYNC_HTTP_TIMEOUT": "3"}).http_timeout == 3.0


def test_old_email_addresses_are_kept_unless_the_config_opts_in_to_removing_them(
    tmp_path: Path,
) -> None:
    assert load_settings(None, {}).zendesk.remove_old_emails is False
    path = write(tmp_path, "[zendesk]\nremove_old_emails = true\n")
    assert load_settings(path, {}).zendesk.remove_old_emails is True
    off = {"TALKSYNC_ZENDESK_REMOVE_OLD_EMAILS": "False"}
    assert load_settings(path, off).zendesk.remove_old_emails is False
    with pytest.raises(ConfigError, match="TALKSYNC_ZENDESK_REMOVE_OLD_EMAILS: expected true or"):
        load_settings(None, {"TALKSYNC_ZENDESK_REMOVE_OLD_EMAILS": "yes"})


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "missing.toml", {})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[state]
path = "here.db"
[zendesk]
base_url = "https://file.zendesk.com"
rate_limit_per_minute = 400
""",
    )
    assert load_settings(path, {}).state_path == tmp_path / "here.db"
    assert load_settings(path, {}).zendesk.rate_limit_per_minute == 400
    env = {
        "TALKSYNC_STATE": "/elsewhere.db",
        "TALKSYNC_ZENDESK_SUBDOMAIN": "envco",
        "TALKSYNC_ZENDESK_RATE_LIMIT": "700",
    }
    settings = load_settings(path, env)
    assert settings.state_path == Path("/elsewhere.db")
    assert settings.zendesk.base_url == "https://envco.zendesk.com"
    assert settings.zendesk.rate_limit_per_minute == 700
    assert load_settings(path, env, state_path=Path("flag.db")).state_path == Path("flag.db")


def test_missing_settings_are_listed_one_line_each() -> None:
    problems = load_settings(
        None, {"TALKSYNC_ZENDESK_API_TOKEN": "t", "TALKSYNC_ZENDESK_SUBDOMAIN": "x"}
    ).missing()
    assert len(problems) == 4
    assert any("TALKSYNC_POWEROFFICE_APPLICATION_KEY" in p for p in problems)
    assert any("TALKSYNC_ZENDESK_EMAIL" in p for p in problems)
    oauth = load_settings(None, {"TALKSYNC_ZENDESK_OAUTH_TOKEN": "t"}).zendesk.missing()
    assert oauth == [p for p in oauth if "SUBDOMAIN" in p]


@pytest.mark.parametrize(
    ("text", "delta"),
    [
        ("90s", timedelta(seconds=90)),
        ("5m", timedelta(minutes=5)),
        ("1h30m", timedelta(minutes=90)),
        ("2d", timedelta(days=2)),
    ],
)
def test_durations(text: str, delta: timedelta) -> None:
    assert parse_duration(text) == delta


@pytest.mark.parametrize("text", ["", "5", "m", "5x", "0s", "5m garbage"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text, what="--every")


def test_a_zendesk_api_url_is_accepted_as_the_base_url() -> None:
    env = {"TALKSYNC_ZENDESK_BASE_URL": "https://acme.zendesk.com/api/v2/"}
    assert load_settings(None, env).zendesk.base_url == "https://acme.zendesk.com"


def test_the_template_writes_each_policy_only_where_it_applies() -> None:
    import tomllib

    from cli.config import config_template as template
    from talkcore.dataflow import DEFAULT_DATAFLOW

    flows = tomllib.loads(template())["flows"]
    assert set(flows) == set(DEFAULT_DATAFLOW.ids)
    for flow in DEFAULT_DATAFLOW:
        keys = set(flows[flow.id])
        assert ("allow_moves" in keys) == any(p.is_reference for p in flow.properties), flow.id
        assert ("create" in keys) == (flow.creates_in_zendesk or flow.creates_in_poweroffice)
        assert ("conflict" in keys) == bool(flow.properties), flow.id
    assert "allow_moves" not in flows["customers-organizations"]
    assert "create" not in flows["contact-persons-users"]


def test_every_variable_in_the_table_is_read_by_the_loader_the_template_and_the_readme() -> None:
    """The settings table is the one spelling: each variable changes its setting, appears in
    ``init``'s template, and the README's credentials table lists exactly these variables."""
    import re

    from cli.config import SETTINGS

    defaults = load_settings(None, {})
    for setting in SETTINGS:
        value = {
            "TALKSYNC_ZENDESK_RATE_LIMIT": "345",
            "TALKSYNC_HTTP_TIMEOUT": "7",
            "TALKSYNC_ZENDESK_REMOVE_OLD_EMAILS": "true",
            "TALKSYNC_DATABASE_URL": "postgresql://db.example/talksync",
        }.get(setting.env, "https://set.example" if setting.key.endswith("url") else "set")
        assert load_settings(None, {setting.env: value}) != defaults, setting.env
    names = {v.env for v in SETTINGS}
    template = config_template()
    assert all(name in template for name in names)
    assert all(setting.file_key.split(".")[1] in template for setting in SETTINGS)
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    table = readme.split("### Credentials\n", 1)[1].split("\n### ", 1)[0]
    assert set(re.findall(r"TALKSYNC_[A-Z_]+", table)) == names


def test_every_flow_policy_setting_is_in_the_template_somewhere() -> None:
    import tomllib

    import attrs

    flows = tomllib.loads(config_template())["flows"]
    written = {key for table in flows.values() for key in table}
    assert written == {field.name for field in attrs.fields(FlowPolicy)}


def test_the_database_url_is_a_secret_from_the_environment_or_a_file(tmp_path: Path) -> None:
    url = "postgresql://talksync:pw@db.example:5432/talksync"
    settings = load_settings(None, {"TALKSYNC_DATABASE_URL": url})
    assert settings.database_url == url
    assert "pw" not in repr(settings)
    assert settings.state_location == "postgresql://talksync@db.example:5432/talksync"
    (tmp_path / "db-url").write_text(url + "\n")
    path = write(tmp_path, '[state]\ndatabase_url_file = "db-url"\n')
    assert load_settings(path, {}).database_url == url
    assert load_settings(None, {}).state_location == str(DEFAULT_STATE_PATH)


def test_a_database_url_in_the_toml_or_of_another_kind_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, '[state]\ndatabase_url = "postgresql://x/y"\n')
    assert "state.database_url: secrets are not read from the config file" in error_of(path)
    with pytest.raises(ConfigError, match="TALKSYNC_DATABASE_URL: expected a postgresql:// URL"):
        load_settings(None, {"TALKSYNC_DATABASE_URL": "mysql://x/y"})
