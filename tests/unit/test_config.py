import dataclasses

import pytest

from ticketing.config import VARIABLES, ConfigError, Settings


def test_every_setting_has_a_documented_variable():
    names = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    listed = {k.removeprefix("TICKETING_").lower() for k in VARIABLES}
    assert names == listed


def test_defaults_agree_with_the_variable_table():
    defaults = Settings.from_env({})
    for name, (default, _) in VARIABLES.items():
        assert str(getattr(defaults, name.removeprefix("TICKETING_").lower())) == default, name


def test_environment_overrides_defaults():
    s = Settings.from_env({"TICKETING_CATALOG_PORT": "9999", "TICKETING_ENV": "test"})
    assert s.catalog_port == 9999
    assert not s.is_dev


@pytest.mark.parametrize(
    "env",
    [
        {"TICKETING_CATALOG_PORT": "eighty"},
        {"TICKETING_RATE_LIMIT_PER_MINUTE": "0"},
        {"TICKETING_ENV": "staging"},
        {"TICKETING_JWT_ALGORITHM": "none"},
        {"TICKETING_JWT_ALGORITHM": "RS256"},  # without a public key
        {"TICKETING_JWT_SECRET": "short"},
        {"TICKETING_ENV": "prod"},  # with the published development secret
        {"TICKETING_BOOKING_STAGES": "payment"},
        {"TICKETING_BOOKING_STAGES": "commands,reserves"},
    ],
)
def test_bad_values_are_refused_at_start(env):
    with pytest.raises(ConfigError):
        Settings.from_env(env)


@pytest.mark.parametrize(
    ("raw", "stages"),
    [
        ("", ("commands", "payments")),
        ("payments", ("payments",)),
        ("commands", ("commands",)),
        (" payments , commands ", ("commands", "payments")),
    ],
)
def test_booking_stages_are_read_in_one_order(raw, stages):
    settings = Settings.from_env({"TICKETING_BOOKING_STAGES": raw})
    assert settings.booking_stage_names == stages
    # As a child process reads it back from the environment the benches and tests write.
    assert Settings.from_env({"TICKETING_BOOKING_STAGES": settings.booking_stages}) == settings


def test_readme_documents_every_variable():
    from pathlib import Path

    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [name for name in VARIABLES if f"`{name}`" not in readme]
    assert missing == []
