"""What the tests share, in one place. Fixtures (what a test receives as a parameter) live in
`tests/conftest.py`; the plain helpers behind them live here:

- a running worker with an inbox: take the `stack` fixture and write
  `async with stack.worker():`; `stack.inbox` gets the user's codes, `stack.deletions` drives the
  runs (`stack.py`: `Stack`, `running_worker`);
- a worker process as an operator runs it: `worker_process(webhook_worker_env(...), log)` with a
  `running_gateway()` as its inbox (`stack.py`, `gateway.py`);
- the API in this process: the `api` fixture, or `in_process_api(create_app(...))` (`stack.py`);
- driving a run: `start_and_receive_code` (`..._by_webhook` for a worker process),
  `wait_for_stage`, `record_history` (`runs.py`);
- accounts and rows: `new_account`, `attach_every_prerequisite`, `seed_residual_rows`, and the
  checks `assert_deleted_exactly_once`, `table_snapshot` (`data.py`);
- databases and PostgreSQL servers of a test's own (`servers.py`).
"""

from tests.support.cli import cli
from tests.support.data import (
    assert_deleted_exactly_once,
    attach_every_prerequisite,
    contact_of,
    new_account,
    object_locked,
    purged_rows,
    resolve_every_prerequisite,
    seed_residual_rows,
    settled_purged_rows,
    table_snapshot,
)
from tests.support.gateway import Gateway, running_gateway
from tests.support.inbox import CODE, Inbox
from tests.support.runs import (
    HISTORIES,
    TAKEOVER_POLICY,
    confirm_after_one_wrong_code,
    record_history,
    start_and_receive_code,
    start_and_receive_code_by_webhook,
    wait_for_stage,
)
from tests.support.servers import (
    dsn_for,
    migrate_database,
    migrated_embedded_postgres,
    new_database,
)
from tests.support.stack import (
    API_TOKEN,
    REPO_ROOT,
    TEST_CODE_HASH_KEY,
    Stack,
    code_hasher_for_tests,
    in_process_api,
    product_worker_process,
    running_worker,
    webhook_worker_env,
    worker_process,
)

__all__ = [
    "API_TOKEN",
    "CODE",
    "HISTORIES",
    "REPO_ROOT",
    "TEST_CODE_HASH_KEY",
    "cli",
    "Gateway",
    "Inbox",
    "TAKEOVER_POLICY",
    "Stack",
    "assert_deleted_exactly_once",
    "attach_every_prerequisite",
    "code_hasher_for_tests",
    "confirm_after_one_wrong_code",
    "contact_of",
    "dsn_for",
    "in_process_api",
    "migrate_database",
    "migrated_embedded_postgres",
    "new_account",
    "new_database",
    "object_locked",
    "product_worker_process",
    "purged_rows",
    "record_history",
    "resolve_every_prerequisite",
    "running_gateway",
    "running_worker",
    "seed_residual_rows",
    "settled_purged_rows",
    "start_and_receive_code",
    "start_and_receive_code_by_webhook",
    "table_snapshot",
    "wait_for_stage",
    "webhook_worker_env",
    "worker_process",
]
