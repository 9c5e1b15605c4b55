import dataclasses
from pathlib import Path

import pytest

from catalog_api.app import create_app as catalog_app
from ticketing.config import VARIABLES, ConfigError, Secret, Settings, default
from ticketing.problems import Problem
from ticketing.settings_schema import declared, markdown_table
from waitingroom.app import create_app as waitingroom_app
from waitingroom.queue.ticket import issue_ticket, read_ticket

SECRETS = (
    "jwt_secret",
    "typesense_api_key",
    "stripe_api_key",
    "stripe_webhook_secret",
    "admission_secret",
    "queue_ticket_secret",
    "command_secret",
)
SECRET_VARIABLES = [f"TICKETING_{name.upper()}" for name in SECRETS]
DEV = {"TICKETING_ENV": "dev"}
# A production environment: every secret a value of its own (TICKETING_ENV unset).
OWN_SECRETS = {
    **{name: f"{name.lower()}-of-this-deployment-0123456789" for name in SECRET_VARIABLES},
    # The default broker login is RabbitMQ's guest: a deployment has one of its own.
    "TICKETING_AMQP_URL": "amqp://ticketing:broker-of-this-deployment@rabbit:5672/",
}


def test_every_setting_has_a_documented_variable():
    names = {f.name for f in dataclasses.fields(Settings)} - {"extra"}
    listed = {k.removeprefix("TICKETING_").lower() for k in VARIABLES}
    assert names == listed
    assert all(doc for _, doc in VARIABLES.values())


def test_each_default_has_its_declared_type():
    for setting in declared(Settings):
        assert type(setting.default) is setting.type, setting.variable


def test_defaults_agree_with_the_variable_table():
    defaults = Settings.from_env(DEV)
    assert defaults == Settings(env="dev")
    for name, (value, _) in VARIABLES.items():
        if name != "TICKETING_ENV":
            assert str(getattr(defaults, name.removeprefix("TICKETING_").lower())) == value, name


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
    assert Settings.from_env({**DEV, "TICKETING_CATALOG_PORT": ""}).catalog_port == 8081


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
        ({"TICKETING_BOOKING_WORKER_SLOT": "3/3"}, "TICKETING_BOOKING_WORKER_SLOT must be i/n"),
        ({"TICKETING_BOOKING_STAGES": "payment"}, "TICKETING_BOOKING_STAGES must name"),
        ({"TICKETING_BOOKING_STAGES": "commands,reserves"}, "TICKETING_BOOKING_STAGES must"),
        ({"TICKETING_TYPESENSE_URL": "search:8108"}, "TICKETING_TYPESENSE_URL: 'search:8108'"),
        ({"TICKETING_TYPESENSE_URL": "http://a:8108/x"}, "is not http\\(s\\)://host"),
        ({"TICKETING_TYPESENSE_URL": "http://a:8108,http://a:8108/"}, "names a node twice"),
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
    settings = Settings.from_env({**DEV, "TICKETING_BOOKING_STAGES": raw})
    assert settings.booking_stage_names == stages
    # As a child process reads it back from the environment the benches and tests write.
    again = {**DEV, "TICKETING_BOOKING_STAGES": settings.booking_stages}
    assert Settings.from_env(again) == settings


def test_typesense_url_lists_a_clusters_nodes():
    settings = Settings.from_env(
        {**DEV, "TICKETING_TYPESENSE_URL": " http://ts-0:8108/, http://ts-1:8108 ,http://ts-2"}
    )
    assert settings.typesense_url == "http://ts-0:8108,http://ts-1:8108,http://ts-2"
    assert settings.typesense_nodes == ("http://ts-0:8108", "http://ts-1:8108", "http://ts-2")
    assert Settings(env="dev").typesense_nodes == ("http://127.0.0.1:8108",)


def test_a_child_process_reads_the_same_settings_back():
    settings = Settings(
        env="test",
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
    given = {**DEV, "TICKETING_JWT_SECRET": "j" * 40, "TICKETING_STRIPE_API_KEY": "sk_test_visible"}
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


# --- prod: the default, and only with secrets of its own ------------------------------------


def test_without_ticketing_env_a_service_runs_as_prod():
    assert default("TICKETING_ENV") == "prod"
    assert Settings().env == "prod"
    settings = Settings.from_env(OWN_SECRETS)
    assert (settings.env, settings.is_dev) == ("prod", False)
    assert Settings.from_env({**OWN_SECRETS, "TICKETING_ENV": ""}).env == "prod"


def test_every_secret_and_key_is_declared_secret():
    # The prod check reads the declarations: a key typed str would escape it.
    assert {d.attribute for d in declared(Settings) if d.type is Secret} == set(SECRETS)


def test_prod_names_every_public_secret_at_once():
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({})
    message = str(refused.value)
    assert all(name in message for name in SECRET_VARIABLES), message
    assert "TICKETING_ENV=dev" in message  # the way out, for a developer
    assert "dev-only" not in message  # it names the variables, never a value


@pytest.mark.parametrize("variable", SECRET_VARIABLES)
def test_prod_refuses_each_default_or_shipped_secret_naming_it(variable):
    known = next(d for d in declared(Settings) if d.variable == variable).known_values
    assert default(variable) in known and len(known) >= 2  # the default and compose's
    for value in [*sorted(known), "", "   ", f" {default(variable)}\n"]:
        with pytest.raises(ConfigError) as refused:
            Settings.from_env({**OWN_SECRETS, variable: value})
        named = [name for name in SECRET_VARIABLES if name in str(refused.value)]
        assert named == [variable], (value, str(refused.value))


@pytest.mark.parametrize(
    ("variable", "url"),
    [
        ("TICKETING_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),  # the default
        ("TICKETING_AMQP_URL", "amqp://admin:guest@rabbit:5672/prod"),
        ("TICKETING_AMQP_URL", "amqp://ticketing:ticketing@rabbitmq:5672/"),  # compose dev
        ("TICKETING_DATABASE_URL", "postgresql://ticketing:ticketing@postgres:5432/ticketing"),
    ],
)
def test_prod_refuses_a_published_password_in_a_url(variable, url):
    with pytest.raises(ConfigError) as refused:
        Settings.from_env({**OWN_SECRETS, variable: url})
    assert variable in str(refused.value)
    assert "guest" not in str(refused.value) and "ticketing@" not in str(refused.value)
    # Control: the same URL with a password of its own, or none (socket or trust auth).
    user, password = url.split("//")[1].split("@")[0].split(":")
    for login in (f"{user}:s3cret-own", user):
        mine = url.replace(f"{user}:{password}", login)
        assert Settings.from_env({**OWN_SECRETS, variable: mine}).env == "prod", mine


def test_prod_with_secrets_of_its_own_starts():
    settings = Settings.from_env(OWN_SECRETS)
    for name, value in OWN_SECRETS.items():
        assert getattr(settings, name.removeprefix("TICKETING_").lower()) == value
    # ... and a child process given its environment starts the same.
    assert Settings.from_env(settings.to_env()) == settings


def test_under_rs256_prod_needs_the_public_key_not_the_hs256_secret():
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n"
    rs256 = {**OWN_SECRETS, "TICKETING_JWT_ALGORITHM": "RS256", "TICKETING_JWT_PUBLIC_KEY": pem}
    del rs256["TICKETING_JWT_SECRET"]
    assert Settings.from_env(rs256).jwt_algorithm == "RS256"
    with pytest.raises(ConfigError, match="needs TICKETING_JWT_PUBLIC_KEY"):
        Settings.from_env({**rs256, "TICKETING_JWT_PUBLIC_KEY": ""})
    # The other secrets are still needed.
    with pytest.raises(ConfigError, match="TICKETING_ADMISSION_SECRET"):
        Settings.from_env({**rs256, "TICKETING_ADMISSION_SECRET": ""})


@pytest.mark.parametrize("env", ["dev", "test"])
def test_dev_and_test_keep_the_development_defaults(env):
    settings = Settings.from_env({"TICKETING_ENV": env})
    assert settings.is_dev == (env == "dev")
    assert settings.queue_ticket_secret == default("TICKETING_QUEUE_TICKET_SECRET")


def test_a_ticket_forged_with_the_published_key_restores_no_place_in_prod():
    # Anyone can sign with the default key: it is in this repository.
    published = Settings(env="dev")
    forged = issue_ticket(published, 5, "mallory", "waiting", 1, "e1")
    # Control: a service holding that key takes the forgery for place 1 (prod did, before).
    assert read_ticket(Settings.from_env(DEV), forged, "mallory", 5) == ("waiting", 1, "e1")
    # Prod does not start with it, and with a key of its own refuses the forgery.
    with pytest.raises(ConfigError, match="TICKETING_QUEUE_TICKET_SECRET"):
        Settings.from_env({**OWN_SECRETS, "TICKETING_QUEUE_TICKET_SECRET": ""})
    with pytest.raises(Problem) as refused:
        read_ticket(Settings.from_env(OWN_SECRETS), forged, "mallory", 5)
    assert refused.value.code == "validation_error"


def served_paths(app) -> set[str]:
    return {r.resource.canonical for r in app.router.routes() if r.resource is not None}


@pytest.mark.parametrize("env", ["prod", "test"])
def test_the_dev_token_route_exists_only_in_dev(env):
    settings = Settings(env=env)
    for app in (
        catalog_app(settings),
        waitingroom_app(settings),
        waitingroom_app(settings, "booking"),
    ):
        assert "/auth/dev-token" not in served_paths(app)
    # Control: the same app in dev serves it.
    assert "/auth/dev-token" in served_paths(waitingroom_app(Settings(env="dev")))
