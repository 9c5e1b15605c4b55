import dataclasses
from pathlib import Path

import pytest

from ticketing.config import VARIABLES, ConfigError, Secret, Settings
from ticketing.settings_schema import declared, markdown_table

SECRETS = (
    "jwt_secret",
    "typesense_api_key",
    "stripe_api_key",
    "stripe_webhook_secret",
    "admission_secret",
    "queue_ticket_secret",
)


def test_every_setting_has_a_documented_variable():
    names = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    listed = {k.removeprefix("TICKETING_").lower() for k in VARIABLES}
    assert names == listed
    assert all(doc for _, doc in VARIABLES.values())


def test_each_default_has_its_declared_type():
    for setting in declared(Settings):
        assert type(setting.default) is setting.type, setting.variable


def test_defaults_agree_with_the_variable_table():
    defaults = Settings.from_env({})
    assert defaults == Settings()
    for name, (default, _) in VARIABLES.items():
        assert str(getattr(defaults, name.removeprefix("TICKETING_").lower())) == default, name


def test_environment_overrides_defaults():
    s = Settings.from_env(
        {
            "TICKETING_CATALOG_PORT": "9999",
            "TICKETING_ENV": "test",
            "TICKETING_OUTBOX_POLL_SECONDS": "0.25",
            "TICKETING_JWT_ALGORITHM": "hs256",
            "TICKETING_TYPESENSE_URL": "http://search:8108/",
            "TICKETING_BOOKING_WORKER_SLOT": " 1/3 ",
        }
    )
    assert s.catalog_port == 9999
    assert not s.is_dev
    assert s.outbox_poll_seconds == 0.25
    assert s.jwt_algorithm == "HS256"
    assert s.typesense_url == "http://search:8108"
    assert s.booking_worker_slot == "1/3"
    # Empty means unset, as a compose file's `VAR=` does.
    assert Settings.from_env({"TICKETING_CATALOG_PORT": ""}).catalog_port == 8081


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"TICKETING_CATALOG_PORT": "eighty"}, "TICKETING_CATALOG_PORT must be an integer"),
        ({"TICKETING_OUTBOX_POLL_SECONDS": "soon"}, "TICKETING_OUTBOX_POLL_SECONDS must be a"),
        ({"TICKETING_RATE_LIMIT_PER_MINUTE": "0"}, "TICKETING_RATE_LIMIT_PER_MINUTE must be >= 1"),
        ({"TICKETING_MAX_BODY_BYTES": "1000"}, "TICKETING_MAX_BODY_BYTES must be >= 1024"),
        ({"TICKETING_STRIPE_LATENCY_MS": "-1"}, "TICKETING_STRIPE_LATENCY_MS must be >= 0"),
        ({"TICKETING_ENV": "staging"}, "TICKETING_ENV must be dev, test or prod"),
        ({"TICKETING_QUEUE_MODE": "fast"}, "TICKETING_QUEUE_MODE must be manual or auto"),
        ({"TICKETING_GATEWAY_QUEUE_JOIN": "yes"}, "TICKETING_GATEWAY_QUEUE_JOIN must be on or"),
        ({"TICKETING_JWT_ALGORITHM": "none"}, "TICKETING_JWT_ALGORITHM must be HS256 or RS256"),
        ({"TICKETING_JWT_ALGORITHM": "RS256"}, "needs TICKETING_JWT_PUBLIC_KEY"),
        ({"TICKETING_JWT_PUBLIC_KEY": "/nonexistent.pem"}, "cannot read /nonexistent.pem"),
        ({"TICKETING_JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"TICKETING_ENV": "prod"}, "TICKETING_JWT_SECRET must be set in prod"),
        ({"TICKETING_BOOKING_WORKER_SLOT": "3/3"}, "TICKETING_BOOKING_WORKER_SLOT must be i/n"),
        ({"TICKETING_BOOKING_STAGES": "payment"}, "TICKETING_BOOKING_STAGES must name"),
        ({"TICKETING_BOOKING_STAGES": "commands,reserves"}, "TICKETING_BOOKING_STAGES must"),
    ],
)
def test_bad_values_are_refused_at_start_naming_the_variable(env, says):
    with pytest.raises(ConfigError, match=says):
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


def test_a_child_process_reads_the_same_settings_back():
    settings = Settings(
        catalog_port=9999,
        outbox_poll_seconds=0.25,
        booking_stages="payments",
        booking_worker_slot="1/2",
        jwt_secret="k" * 40,
        queue_allowed_origins="https://a.example,https://b.example",
    )
    env = settings.to_env()
    assert env["TICKETING_JWT_SECRET"] == "k" * 40  # the value itself, not its mask
    assert Settings.from_env(env) == settings


def test_secrets_stay_out_of_what_is_logged_but_work_as_strings():
    given = {"TICKETING_JWT_SECRET": "j" * 40, "TICKETING_STRIPE_API_KEY": "sk_test_visible"}
    settings = Settings.from_env(given)
    shown = repr(settings)
    assert "j" * 40 not in shown
    assert "sk_test_visible" not in shown
    assert "dev-only" not in shown  # the other secrets' development defaults
    assert settings.jwt_secret == "j" * 40
    assert f"Bearer {settings.stripe_api_key}" == "Bearer sk_test_visible"
    assert settings.jwt_secret.encode() == b"j" * 40
    # A secret given in code (tests, dataclasses.replace) is a Secret all the same.
    replaced = dataclasses.replace(settings, admission_secret="a" * 40)
    assert isinstance(replaced.admission_secret, Secret)
    assert "a" * 40 not in repr(replaced)
    for name in SECRETS:
        assert isinstance(getattr(Settings(), name), Secret), name


def test_urls_show_no_password():
    settings = Settings(amqp_url="amqp://ticketing:hunter2@rabbit:5672/prod")
    assert settings.amqp_url == "amqp://ticketing:hunter2@rabbit:5672/prod"
    assert "hunter2" not in repr(settings)
    assert "amqp://ticketing:********@rabbit:5672/prod" in repr(settings)
    assert "postgresql://postgres@127.0.0.1:5432/ticketing" in repr(settings)  # no password


def test_readme_table_is_the_declarations():
    readme = (Path(__file__).parents[3] / "README.md").read_text()
    assert markdown_table(Settings) in readme
    for name in VARIABLES:
        assert f"`{name}`" in readme
