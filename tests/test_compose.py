"""docker-compose.yml and the Dockerfile agree with the code they deploy.

No Docker engine is needed: the files are parsed and checked against the product's own
settings, command line, constants and routes, so that a renamed setting, subcommand, task
queue or search attribute breaks this test instead of the deployment.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import ValidationError

from contract.models import ProductDriver
from core.config import Settings
from registry.catalog import load_catalog
from service.cli.parser import build_parser
from service.embedded import ARCHIVE_DATABASE_NAME, DATABASE_NAME, SEARCH_ATTRIBUTES

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

PRODUCT_SERVICES = {"migrate": "migrate", "worker": "worker", "api": "api"}
"""The services built from the repository, and the subcommand each one runs."""
PRODUCT_WORKERS = {"archive-worker": "archive"}
"""Services that run a product team's purge worker (`product-worker <product>`), by product."""
TEMPORAL_NAMESPACE_JOB = "temporal-create-namespace"
OFFICIAL_IMAGE = re.compile(
    r"^(?P<repo>postgres|temporalio/server|temporalio/admin-tools|temporalio/ui)"
    r":(?P<tag>[0-9][A-Za-z0-9._-]*)$"
)
"""Official images only, each pinned to a version tag (no `latest`, no variables)."""
ONE_SHOT_CONDITION = "service_completed_successfully"
_VARIABLE = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")

Service = dict[str, Any]


# --- helpers ---------------------------------------------------------------------------------


def load_compose() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict), f"{COMPOSE_FILE.name} is not a YAML mapping"
    return loaded


def services(compose: Mapping[str, Any]) -> dict[str, Service]:
    found = compose.get("services")
    assert isinstance(found, dict) and found, "docker-compose.yml has no services"
    return found


def default_value(raw: object) -> str | None:
    """A compose value as it is when the operator sets nothing; None where it must be set."""
    text = str(raw)
    required = False

    def substitute(match: re.Match[str]) -> str:
        nonlocal required
        op, arg = match.group("op"), match.group("arg")
        if op is not None and op.endswith("?"):
            required = True
            return ""
        return arg if op is not None and op.endswith("-") else ""

    resolved = _VARIABLE.sub(substitute, text.replace("$$", "\0")).replace("\0", "$")
    return None if required else resolved


def environment(service: Service) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    assert isinstance(env, dict)
    return {str(key): str(value) for key, value in env.items()}


def command(service: Service) -> list[str]:
    raw = service.get("command")
    assert raw is not None, "the service has no command"
    return [str(part) for part in raw] if isinstance(raw, list) else shlex.split(str(raw))


def depends_on(service: Service) -> dict[str, str]:
    """{service: condition}; the short list form means `service_started`."""
    raw = service.get("depends_on", {})
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def one_shot_services(all_services: Mapping[str, Service]) -> set[str]:
    """Jobs that others wait for to finish; everything else runs for good."""
    return {
        name
        for service in all_services.values()
        for name, condition in depends_on(service).items()
        if condition == ONE_SHOT_CONDITION
    }


def published(port: object) -> tuple[int, int]:
    """(host port, container port) of a short-syntax `ports` entry, [ip:]host:container."""
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    parts = str(default_value(port)).split("/")[0].split(":")
    assert len(parts) >= 2, f"port {port!r} is not published on the host"
    return int(parts[-2]), int(parts[-1])


def bound_address(port: object) -> str:
    """The host address a short-syntax `ports` entry binds as the operator leaves it; all
    interfaces when it names none."""
    if isinstance(port, dict):
        return str(port.get("host_ip", "0.0.0.0"))
    parts = str(default_value(port)).split("/")[0].split(":")
    return ":".join(parts[:-2]) or "0.0.0.0"


def settings_env_names() -> set[str]:
    prefix = str(Settings.model_config.get("env_prefix") or "")
    return {f"{prefix}{name}".upper() for name in Settings.model_fields}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    pairs = []
    for entry in logical:
        keyword, _, rest = entry.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def exec_form(arguments: str) -> list[str]:
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError as error:
        raise AssertionError(f"{arguments} is not the exec (JSON array) form") from error
    assert isinstance(parsed, list), f"{arguments} is not the exec (JSON array) form"
    return [str(part) for part in parsed]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


# --- images ----------------------------------------------------------------------------------


def test_every_image_is_official_and_pinned_or_built_from_the_repository(
    compose: dict[str, Any],
) -> None:
    for name, service in services(compose).items():
        if "build" in service:
            build = service["build"]
            context = build if isinstance(build, str) else build.get("context", ".")
            dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile")
            assert (ROOT / context).resolve() == ROOT, f"{name} is built from {context}"
            assert (ROOT / context / (dockerfile or "Dockerfile")).resolve() == DOCKERFILE, (
                f"{name} is built from {dockerfile}, not the repository's Dockerfile"
            )
            continue
        image = str(service.get("image", ""))
        assert OFFICIAL_IMAGE.match(image), (
            f"{name} runs {image!r}: only official Temporal and PostgreSQL images, pinned"
        )


def test_the_deprecated_auto_setup_image_is_not_used(compose: dict[str, Any]) -> None:
    def scalars(node: object) -> list[str]:
        if isinstance(node, dict):
            return [text for item in node.items() for text in scalars(item)]
        if isinstance(node, list | tuple):
            return [text for item in node for text in scalars(item)]
        return [str(node)]

    used = [text for text in scalars(compose) if "auto-setup" in text]
    assert not used, f"temporalio/auto-setup is deprecated: {used}"


def test_temporal_server_and_admin_tools_are_the_same_release(compose: dict[str, Any]) -> None:
    tags: dict[str, str] = {}
    for service in services(compose).values():
        match = OFFICIAL_IMAGE.match(str(service.get("image", "")))
        if match and match["repo"] in ("temporalio/server", "temporalio/admin-tools"):
            tags[match["repo"]] = match["tag"].split("-")[0]
    assert set(tags) == {"temporalio/server", "temporalio/admin-tools"}, tags
    assert tags["temporalio/server"] == tags["temporalio/admin-tools"], (
        "the admin-tools job must set up the schema of the server version that runs on it"
    )


def test_product_services_are_built_from_the_repository(compose: dict[str, Any]) -> None:
    for name in PRODUCT_SERVICES:
        assert "build" in services(compose)[name], f"{name} is not built from the Dockerfile"


def test_bind_mounted_files_exist_in_the_repository(compose: dict[str, Any]) -> None:
    for name, service in services(compose).items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"


# --- the product's environment ---------------------------------------------------------------


def test_product_environment_names_are_settings_fields(compose: dict[str, Any]) -> None:
    known = settings_env_names()
    for name in PRODUCT_SERVICES:
        unknown = set(environment(services(compose)[name])) - known
        assert not unknown, f"{name} sets {sorted(unknown)}, which Settings does not read"


def test_product_services_get_the_settings_they_need(compose: dict[str, Any]) -> None:
    needed = {"TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE", "DATABASE_URL"}
    for name in PRODUCT_SERVICES:
        missing = needed - set(environment(services(compose)[name]))
        assert not missing, f"{name} lacks {sorted(missing)}: it would fall back to embedded"
    api = environment(services(compose)["api"])
    assert "API_TOKEN" in api, "the API refuses to run without API_TOKEN"
    assert default_value(api["API_TOKEN"]) is None, "API_TOKEN must be required, not defaulted"
    worker = environment(services(compose)["worker"])
    assert {"NOTIFIER", "NOTIFY_WEBHOOK_URL"} <= set(worker), "the worker sends the codes"


def test_the_worker_sends_codes_to_a_signed_webhook_never_to_its_log(
    compose: dict[str, Any],
) -> None:
    worker = environment(services(compose)["worker"])
    assert worker["NOTIFIER"] == "webhook", "the log notifier puts every code in container logs"
    for name in ("NOTIFY_WEBHOOK_URL", "NOTIFY_WEBHOOK_SECRET"):
        assert name in worker and default_value(worker[name]) is None, f"{name} must be required"
    for name in PRODUCT_SERVICES:
        env = environment(services(compose)[name])
        assert default_value(env.get("NOTIFIER", "webhook")) == "webhook", name


def test_the_code_hash_key_is_required_by_the_worker(compose: dict[str, Any]) -> None:
    worker = environment(services(compose)["worker"])
    assert "CODE_HASH_KEY" in worker, "the worker refuses to start without CODE_HASH_KEY"
    assert default_value(worker["CODE_HASH_KEY"]) is None, "CODE_HASH_KEY must be required"


def test_product_environment_defaults_are_valid_settings(compose: dict[str, Any]) -> None:
    for name in PRODUCT_SERVICES:
        values = {}
        for key, raw in environment(services(compose)[name]).items():
            value = default_value(raw)
            values[key.lower()] = "set-by-the-operator" if value is None else value
        try:
            settings = Settings.model_validate(values)
        except ValidationError as error:
            raise AssertionError(f"{name}: Settings rejects the defaults: {error}") from error
        assert settings.temporal_address is not None and settings.database_url is not None


def test_task_queue_is_the_one_the_code_uses(compose: dict[str, Any]) -> None:
    queues = {
        environment(services(compose)[name])["TEMPORAL_TASK_QUEUE"] for name in PRODUCT_SERVICES
    }
    assert queues == {Settings().temporal_task_queue}, queues
    if importlib.util.find_spec("contract.names") is not None:
        from contract import names as models

        assert queues == {models.TASK_QUEUE}, queues


def test_namespace_is_the_one_the_namespace_job_creates(compose: dict[str, Any]) -> None:
    job = environment(services(compose)[TEMPORAL_NAMESPACE_JOB])
    for name in PRODUCT_SERVICES:
        env = environment(services(compose)[name])
        assert env["TEMPORAL_NAMESPACE"] == job["NAMESPACE"], name
        assert env["TEMPORAL_ADDRESS"] == job["TEMPORAL_ADDRESS"], name
    assert job["NAMESPACE"] == Settings().temporal_namespace


def test_database_url_is_the_product_database_on_the_compose_postgresql(
    compose: dict[str, Any],
) -> None:
    init_scripts = "\n".join(
        path.read_text() for path in sorted((ROOT / "deploy" / "postgres-init").glob("*"))
    )
    for name in PRODUCT_SERVICES:
        url = urlsplit(str(default_value(environment(services(compose)[name])["DATABASE_URL"])))
        assert url.scheme in ("postgresql", "postgres"), url.scheme
        assert url.hostname in services(compose), f"{name} uses database host {url.hostname}"
        assert url.path.lstrip("/") == DATABASE_NAME, f"{name} uses database {url.path}"
        assert f"create database {DATABASE_NAME} owner {url.username}" in init_scripts.lower(), (
            f"no init script creates {DATABASE_NAME} for role {url.username}"
        )


# --- products beyond this database -----------------------------------------------------------


def _mounted(service: Service, target: str) -> Path:
    """The repository file a service's bind mount puts at `target`."""
    for volume in service.get("volumes", []):
        source, _, rest = str(volume).partition(":")
        if rest.split(":")[0] == target:
            return (ROOT / source).resolve()
    raise AssertionError(f"nothing is mounted at {target}")


def test_the_worker_reads_a_products_file_declaring_each_product_worker(
    compose: dict[str, Any],
) -> None:
    worker = services(compose)["worker"]
    path = default_value(environment(worker)["PRODUCTS_FILE"])
    assert path is not None
    catalog = load_catalog(_mounted(worker, path))  # the deployed file holds together
    for name, product in PRODUCT_WORKERS.items():
        declared = catalog.declared_product(product)
        assert declared is not None, f"{name} serves {product}, which the worker never plans"
        assert declared.driver is ProductDriver.WORKER, product


def test_the_api_reads_the_same_products_file_as_the_worker(compose: dict[str, Any]) -> None:
    """The API verifies `http` products' callbacks with the secrets the worker signs with."""
    worker, api = services(compose)["worker"], services(compose)["api"]
    path = default_value(environment(api)["PRODUCTS_FILE"])
    assert path == default_value(environment(worker)["PRODUCTS_FILE"])
    assert path is not None
    assert _mounted(api, path) == _mounted(worker, path)


def test_each_product_worker_runs_the_cli_verb_on_its_own_database(
    compose: dict[str, Any],
) -> None:
    init_scripts = "\n".join(
        path.read_text() for path in sorted((ROOT / "deploy" / "postgres-init").glob("*"))
    ).lower()
    job = environment(services(compose)[TEMPORAL_NAMESPACE_JOB])
    for name, product in PRODUCT_WORKERS.items():
        service = services(compose)[name]
        args = build_parser().parse_args(command(service)[1:])
        assert (args.command, args.product) == ("product-worker", product), name
        assert "build" in service, f"{name} is not built from the Dockerfile"
        env = environment(service)
        assert set(env) <= settings_env_names(), f"{name} sets what Settings does not read"
        assert "DATABASE_URL" not in env, f"{name} must not reach the deletion service's database"
        assert env["TEMPORAL_NAMESPACE"] == job["NAMESPACE"], name
        assert env["TEMPORAL_ADDRESS"] == job["TEMPORAL_ADDRESS"], name
        assert default_value(env["PAYLOAD_KEYS"]) is None, "PAYLOAD_KEYS must be required"
        url = urlsplit(str(default_value(env["ARCHIVE_DATABASE_URL"])))
        assert url.hostname in services(compose) and url.path == f"/{ARCHIVE_DATABASE_NAME}"
        assert f"create database {ARCHIVE_DATABASE_NAME} owner {url.username}" in init_scripts
        assert (
            url.username
            != urlsplit(
                str(default_value(environment(services(compose)["worker"])["DATABASE_URL"]))
            ).username
        ), "the product's database has a role of its own"
        values = {k.lower(): default_value(v) or "set-by-the-operator" for k, v in env.items()}
        Settings.model_validate(values)
        conditions = depends_on(service)
        assert conditions.get(TEMPORAL_NAMESPACE_JOB) == ONE_SHOT_CONDITION, name
        assert conditions.get("postgresql") == "service_healthy", name
        grace = re.fullmatch(r"(\d+)s", str(service.get("stop_grace_period", "10s")))
        assert grace is not None and int(grace.group(1)) > float(
            str(default_value(env.get("WORKER_SHUTDOWN_SECONDS", "30")))
        ), f"docker would SIGKILL {name} mid-shutdown"
        assert "9464/metrics" in " ".join(map(str, service["healthcheck"]["test"]))
        assert env["WORKER_METRICS_ADDRESS"].endswith(":9464"), name


# --- Temporal --------------------------------------------------------------------------------


def test_search_attributes_registered_are_the_embedded_ones(compose: dict[str, Any]) -> None:
    job = services(compose)[TEMPORAL_NAMESPACE_JOB]
    registered = dict(pair.split("=", 1) for pair in environment(job)["SEARCH_ATTRIBUTES"].split())
    assert registered == SEARCH_ATTRIBUTES
    script = "\n".join(command(job))
    assert "temporal operator search-attribute create" in script
    assert "$$SEARCH_ATTRIBUTES" in script, "the job does not register SEARCH_ATTRIBUTES"
    assert "already exists" in script, "re-running the job must tolerate existing attributes"


def test_temporal_runs_on_the_compose_postgresql(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name in ("temporal", "temporal-admin-tools"):
        env = environment(all_services[name])
        assert env["DB"] == "postgres12", name
        assert env["POSTGRES_SEEDS"] in all_services, name
    setup = "\n".join(command(all_services["temporal-admin-tools"]))
    for database in ("temporal", "temporal_visibility"):
        assert database in setup, f"the admin-tools job does not set up {database}"
    assert "setup-schema" in setup and "update-schema" in setup


def test_ui_talks_to_temporal_and_can_use_a_codec(compose: dict[str, Any]) -> None:
    ui = services(compose)["temporal-ui"]
    env = environment(ui)
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233"
    assert "TEMPORAL_CORS_ORIGINS" in env
    assert "TEMPORAL_CODEC_ENDPOINT" in env
    assert [published(port) for port in ui.get("ports", [])] == [(8233, 8080)]


def test_the_ui_is_on_loopback_and_read_only_unless_the_operator_asks(
    compose: dict[str, Any],
) -> None:
    """It has no login of its own: this host only, and no cancel/terminate/reset by default."""
    ui = services(compose)["temporal-ui"]
    assert [bound_address(port) for port in ui.get("ports", [])] == ["127.0.0.1"]
    env = environment(ui)
    assert default_value(env["TEMPORAL_DISABLE_WRITE_ACTIONS"]) == "true"
    assert default_value(env["TEMPORAL_AUTH_ENABLED"]) == "false"
    assert "TEMPORAL_AUTH_PROVIDER_URL" in env and "TEMPORAL_AUTH_CLIENT_ID" in env
    for name, service in services(compose).items():
        if name != "api":
            for port in service.get("ports", []):
                assert bound_address(port) == "127.0.0.1", f"{name} publishes {port} widely"


def test_payloads_are_encrypted_and_the_ui_decodes_through_the_apis_codec(
    compose: dict[str, Any],
) -> None:
    from service.api.codec_access import CODEC_PATH, SESSION_COOKIE

    for name in ("worker", "api"):
        keys = environment(services(compose)[name]).get("PAYLOAD_KEYS")
        assert keys is not None, f"{name} cannot encrypt payloads without PAYLOAD_KEYS"
        assert default_value(keys) is None, "PAYLOAD_KEYS must be required, not defaulted"
    ui = environment(services(compose)["temporal-ui"])
    endpoint = urlsplit(str(default_value(ui["TEMPORAL_CODEC_ENDPOINT"])))
    api = services(compose)["api"]
    assert endpoint.path == CODEC_PATH, "the UI's codec endpoint is not the API's codec"
    assert endpoint.port in {host for host, _ in map(published, api.get("ports", []))}
    assert ui.get("TEMPORAL_CODEC_INCLUDE_CREDENTIALS") == "true", (
        f"without credentials the UI does not send the {SESSION_COOKIE} cookie"
    )
    (ui_host, _), *_ = map(published, services(compose)["temporal-ui"]["ports"])
    origins = str(default_value(environment(api)["CODEC_CORS_ORIGINS"])).split(",")
    assert f"http://localhost:{ui_host}" in origins, "the codec's CORS does not admit the UI"


# --- commands, ports and start order ---------------------------------------------------------


def test_product_commands_are_subcommands_of_the_cli(compose: dict[str, Any]) -> None:
    for name, subcommand in PRODUCT_SERVICES.items():
        argv = command(services(compose)[name])
        assert argv[0] == "account-deletion", f"{name} runs {argv[0]}"
        try:
            args = build_parser().parse_args(argv[1:])
        except SystemExit as error:
            raise AssertionError(f"{name}: the CLI rejects {argv}") from error
        assert args.command == subcommand, f"{name} runs {args.command}"


def test_api_listens_on_every_interface_at_the_published_port(compose: dict[str, Any]) -> None:
    api = services(compose)["api"]
    args = build_parser().parse_args(command(api)[1:])
    assert args.host == "0.0.0.0", "inside a container the API must not bind 127.0.0.1 only"
    ports = [published(port) for port in api.get("ports", [])]
    assert ports and all(target == args.port for _, target in ports), (ports, args.port)
    probe = " ".join(str(part) for part in api["healthcheck"]["test"])
    assert f":{args.port}/healthz" in probe, "the API healthcheck probes another port"


async def test_api_healthcheck_path_is_a_route_of_the_api(compose: dict[str, Any]) -> None:
    from service.api import create_app

    app = create_app(Settings(api_token="test-token"))
    probe = " ".join(str(part) for part in services(compose)["api"]["healthcheck"]["test"])
    match = re.search(r"https?://[^/\s\"']+(/[^\s\"')]*)", probe)
    assert match is not None, probe
    # Asked, not looked up in app.routes: an included router is one entry there.
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        answer = await http.get(match.group(1))
    assert answer.status_code == 200, f"{match.group(1)} is not served by the API"


def test_worker_and_api_start_after_migration_and_namespace(compose: dict[str, Any]) -> None:
    for name in ("worker", "api"):
        conditions = depends_on(services(compose)[name])
        assert conditions.get("migrate") == ONE_SHOT_CONDITION, name
        assert conditions.get(TEMPORAL_NAMESPACE_JOB) == ONE_SHOT_CONDITION, name


def test_start_order_of_the_temporal_stack(compose: dict[str, Any]) -> None:
    expected = {
        "temporal-admin-tools": {"postgresql": "service_healthy"},
        "temporal": {"temporal-admin-tools": ONE_SHOT_CONDITION},
        TEMPORAL_NAMESPACE_JOB: {"temporal": "service_healthy"},
        "temporal-ui": {"temporal": "service_healthy"},
        "migrate": {"postgresql": "service_healthy"},
    }
    for name, conditions in expected.items():
        assert depends_on(services(compose)[name]) == conditions, name


def test_every_dependency_condition_can_be_met(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    for name, service in all_services.items():
        for dependency, condition in depends_on(service).items():
            assert dependency in all_services, f"{name} depends on unknown {dependency}"
            assert condition in ("service_healthy", ONE_SHOT_CONDITION), (
                f"{name} only waits for {dependency} to start"
            )
            if condition == "service_healthy":
                assert "healthcheck" in all_services[dependency], (
                    f"{name} waits for {dependency} to be healthy but it has no healthcheck"
                )
            else:
                restart = str(all_services[dependency].get("restart", "no"))
                assert restart not in ("always", "unless-stopped"), (
                    f"{dependency} is awaited to complete but restarts forever"
                )


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    all_services = services(compose)
    long_running = set(all_services) - one_shot_services(all_services)
    assert {"postgresql", "temporal", "temporal-ui", "worker", "api", *PRODUCT_WORKERS} <= (
        long_running
    )
    for name in long_running:
        check = all_services[name].get("healthcheck")
        assert check and not check.get("disable") and check.get("test"), name
        assert all_services[name].get("restart") in ("always", "unless-stopped"), name


def test_worker_is_given_time_to_finish_its_activities(compose: dict[str, Any]) -> None:
    worker = services(compose)["worker"]
    configured = default_value(environment(worker).get("WORKER_SHUTDOWN_SECONDS", ""))
    shutdown = float(configured) if configured else Settings().worker_shutdown_seconds
    grace = re.fullmatch(r"(\d+)s", str(worker.get("stop_grace_period", "10s")))
    assert grace is not None, worker.get("stop_grace_period")
    assert int(grace.group(1)) > shutdown, "docker would SIGKILL the worker mid-shutdown"


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_installs_the_project_and_runs_the_cli() -> None:
    instructions = dockerfile_instructions()
    assert instructions[0] == ("FROM", "python:3.12-slim"), instructions[0]
    copies = [args.split() for keyword, args in instructions if keyword == "COPY"]
    assert [".", "/app"] in copies or [".", "/app/"] in copies, copies
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    assert any(re.search(r"pip install (.* )?-e /app\b", run) for run in runs), (
        "the image must install the project editable (migrations are found beside the code)"
    )
    entry = [exec_form(args) for keyword, args in instructions if keyword == "ENTRYPOINT"]
    cmd = [exec_form(args) for keyword, args in instructions if keyword == "CMD"]
    assert cmd, "the Dockerfile has no CMD"
    argv = (entry[-1] if entry else []) + cmd[-1]
    assert argv[0] == "account-deletion", argv
    assert build_parser().parse_args(argv[1:]).command == "worker", argv


def test_the_image_compiles_the_workflow_module_while_the_code_is_writable() -> None:
    """The unprivileged user cannot write bytecode, and the sandbox imports the module per run."""
    instructions = dockerfile_instructions()
    keywords = [keyword for keyword, _ in instructions]
    compiles = [
        index
        for index, (keyword, args) in enumerate(instructions)
        if keyword == "RUN" and re.search(r"compileall\b[^&]*/app/workflows\b", args)
    ]
    assert compiles, "the image does not compile /app/workflows"
    assert compiles[0] < len(keywords) - keywords[::-1].index("USER") - 1, (
        "the bytecode is compiled after the switch to the unprivileged user"
    )


def test_dockerfile_runs_as_an_unprivileged_user() -> None:
    users = [args for keyword, args in dockerfile_instructions() if keyword == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), users


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    patterns = {line.strip().rstrip("/") for line in DOCKERIGNORE.read_text().splitlines()}
    for needed in (".venv", ".data", ".git", "**/__pycache__"):
        assert needed in patterns, f".dockerignore does not exclude {needed}"
