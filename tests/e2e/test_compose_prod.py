"""docker-compose.yml is prod out of the box and dev only through docker-compose.dev.yml.

Read as compose reads them (tests/e2e/compose_files.py): prod requires every secret from the
operator's environment and runs TICKETING_ENV=prod on loopback with the real Stripe; the
dev override sets dev, localstripe and the published development secrets, which prod
refuses.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e import compose_files
from tests.e2e.compose_files import BASE, DEV, DEV_ENV, MissingVariable, interpolate
from ticketing.config import ConfigError, Secret, Settings
from ticketing.settings_schema import declared

PYTHON_SERVICES = ("migrate", "catalog_api", "waitingroom", "search_sync")
PYTHON_SERVICES += ("booking_worker", "booking_payments")
SECRETS = {d.variable: d for d in declared(Settings) if d.type is Secret}
# Passwords of the stores compose runs, part of the services' URLs.
PASSWORDS = {"POSTGRES_PASSWORD", "RABBITMQ_PASSWORD"}


def required(variable: str) -> re.Pattern[str]:
    """``${variable:?message}``: compose stops, saying the message, while it is unset."""
    return re.compile(rf"\$\{{{variable}:\?[^}}]+\}}")


def test_the_interpolation_is_composes():
    env = {"SET": "v", "EMPTY": ""}
    cases = {
        "a$$b": "a$b",
        "$SET/${SET}": "v/v",
        "${EMPTY:-d}|${EMPTY-d}|${UNSET-d}": "d||d",
        "${SET:+alt}|${EMPTY:+alt}": "alt|",
        "${EMPTY?m}": "",
    }
    for raw, expected in cases.items():
        assert interpolate(raw, env) == expected, raw
    for raw in ("${UNSET:?say this}", "${EMPTY:?say this}", "${UNSET?say this}"):
        with pytest.raises(MissingVariable, match="say this"):
            interpolate({"k": [raw]}, env)


def test_prod_compose_takes_every_secret_from_the_environment():
    services = compose_files.raw(BASE)["services"]
    for name in PYTHON_SERVICES:
        env = services[name]["environment"]
        for variable in SECRETS:
            assert required(variable).fullmatch(env[variable]), f"{name}: {variable}"
        assert required("POSTGRES_PASSWORD").search(env["TICKETING_DATABASE_URL"]), name
        assert required("RABBITMQ_PASSWORD").search(env["TICKETING_AMQP_URL"]), name
    gateway = services["nginx"]["environment"]
    for variable in ("TICKETING_JWT_SECRET", "TICKETING_QUEUE_TICKET_SECRET"):
        assert required(variable).fullmatch(gateway[variable]), variable
    assert required("POSTGRES_PASSWORD").fullmatch(
        services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    )
    assert required("RABBITMQ_PASSWORD").fullmatch(
        services["rabbitmq"]["environment"]["RABBITMQ_DEFAULT_PASS"]
    )
    typesense = services["typesense"]["command"]
    key = typesense[typesense.index("--api-key") + 1]
    assert required("TICKETING_TYPESENSE_API_KEY").fullmatch(key)
    assert compose_files.required_variables(BASE) == set(SECRETS) | PASSWORDS


@pytest.mark.parametrize("missing", sorted(set(SECRETS) | PASSWORDS))
def test_prod_compose_without_a_secret_does_not_start(missing):
    env = compose_files.prod_environment()
    for value in (None, ""):
        given = {k: v for k, v in env.items() if k != missing}
        if value is not None:
            given[missing] = value
        with pytest.raises(MissingVariable, match=rf"\b{missing}\b"):
            compose_files.load([BASE], given)
    with pytest.raises(MissingVariable):
        compose_files.load([BASE], {})


def test_prod_compose_runs_prod_with_the_operators_secrets():
    env = compose_files.prod_environment()
    services = compose_files.prod_services()
    for name in PYTHON_SERVICES:
        settings = Settings.from_env(services[name]["environment"])
        assert (settings.env, settings.is_dev) == ("prod", False), name
        for variable, d in SECRETS.items():
            assert getattr(settings, d.attribute) == env[variable], f"{name}: {variable}"
        assert settings.stripe_api_base == "https://api.stripe.com", name
    assert "localstripe" not in services  # no fake payments in prod
    # The image, run without compose, is prod as well.
    dockerfile = (compose_files.ROOT / "deploy" / "Dockerfile").read_text()
    assert re.search(r"^\s*TICKETING_ENV=prod\b", dockerfile, re.M)


def test_prod_compose_refuses_the_development_secrets():
    # An operator who runs the base file with the dev env file: compose starts, the
    # services do not, naming every secret.
    services = compose_files.load([BASE], compose_files.read_env_file(DEV_ENV))
    for name in PYTHON_SERVICES:
        with pytest.raises(ConfigError) as refused:
            Settings.from_env(services[name]["environment"])
        assert all(variable in str(refused.value) for variable in SECRETS), name


def test_prod_compose_publishes_the_gateway_on_loopback_unless_told():
    env = compose_files.prod_environment()
    services = compose_files.load([BASE], env)
    assert services["nginx"]["ports"] == ["127.0.0.1:8080:8080"]
    assert [name for name, service in services.items() if service.get("ports")] == ["nginx"]
    wider = compose_files.load([BASE], {**env, "PUBLISH_ADDRESS": "0.0.0.0"})  # noqa: S104
    assert wider["nginx"]["ports"] == ["0.0.0.0:8080:8080"]
    assert compose_files.dev_services()["nginx"]["ports"] == ["127.0.0.1:8080:8080"]


def test_the_dev_override_sets_dev_localstripe_and_development_secrets():
    services = compose_files.dev_services()
    for name in [*PYTHON_SERVICES, "localstripe"]:
        settings = Settings.from_env(services[name]["environment"])
        assert settings.is_dev, name
    for name in ("booking_worker", "booking_payments"):
        env = services[name]["environment"]
        assert env["TICKETING_STRIPE_API_BASE"] == "http://localstripe:8420"
        assert services[name]["depends_on"]["localstripe"]["condition"] == "service_healthy"


def test_the_development_secrets_are_the_ones_prod_refuses():
    dev_env = compose_files.read_env_file(DEV_ENV)
    # Exactly what the base file requires, so that dev starts ...
    assert set(dev_env) == compose_files.required_variables(BASE)
    # ... and each secret is declared shipped, so that prod does not.
    for variable, value in dev_env.items():
        if variable not in PASSWORDS:
            assert value in SECRETS[variable].known_values, variable


def test_the_dev_override_merges_key_by_key():
    # Where the override meets a base service it sets mappings and scalars only: compose
    # merges those key by key (as compose_files.merge does), but appends some lists.
    base = compose_files.raw(BASE)["services"]
    for name, service in compose_files.raw(DEV)["services"].items():
        for key, value in service.items() if name in base else ():
            assert isinstance(value, dict | str | int), f"{name}.{key}"
            assert isinstance(base[name].get(key, {}), type(value)), f"{name}.{key}"
